"""What the hop to an OpenAI-compatible upstream costs: in-process generation vs the same model behind the openai
backend, on the tiny preset, at several concurrency levels.

Starts two gunicorns on 127.0.0.1: the upstream, a Guidepost generating in-process (tiny preset), and a front with
`backend: openai` pointed at the upstream's /v1/chat/completions. Closed-loop clients send scikit-image's photos to
/process on each, interleaved in rounds (upstream, front, upstream, front...) so that load drifting on a shared
machine hits both alike; the front's extra time over the upstream's is what the hop adds: the front's detection,
JPEG + base64 of the photo, HTTP and SSE, and, because this upstream is a Guidepost, its own decode and detection
(which a vLLM upstream does not do; the report gives the upstream's detect time so it can be subtracted).

    .venv/bin/python bench/openai_hop.py [--levels 1,4,8] [--requests 60] [--rounds 2]

Writes bench/results/openai-hop-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.presets import shipped, write_presets  # noqa: E402
from guidepost.files import atomic_write  # noqa: E402
from guidepost_tools.loadtest.payloads import build_payloads, default_photos  # noqa: E402
from guidepost_tools.loadtest.report import summarise_level  # noqa: E402
from guidepost_tools.loadtest.runner import Level, LoadRunner  # noqa: E402
from guidepost_tools.loadtest.server import LocalServer  # noqa: E402

# Both servers: one worker with one torch thread each (a front and its upstream each get a core of this 2-core
# machine, as they would get a machine each), and no busy fallbacks, so every answer is a generated one.
COMMON = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_WORKERS": "1", "GUIDEPOST_TORCH_THREADS": "1",
          "GUIDEPOST_THREADS": "16", "GUIDEPOST_MAX_QUEUE": "12", "GUIDEPOST_MAX_IN_FLIGHT": "0"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,4,8", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=60, help="requests per level, per round, per server")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (upstream, front) per level")
    parser.add_argument("--warmup", type=int, default=8, help="unmeasured requests to each server first")
    parser.add_argument("--model-cache", type=Path, default=None, help="GUIDEPOST_MODEL_CACHE (default: the repo's)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.level_list = [int(level) for level in args.levels.split(",") if level.strip()]
    return args


def front_preset(folder: Path) -> Path:
    """A presets folder with `front`: the tiny preset on the openai backend (the model is the upstream's)."""
    preset = shipped("tiny")
    preset.update(backend="openai", description="tiny detector here, generation on the upstream")
    return write_presets(folder, front=preset)


def main(argv=None) -> int:
    args = parse_args(argv)
    cache = {"GUIDEPOST_MODEL_CACHE": str(args.model_cache)} if args.model_cache else {}
    payloads = build_payloads(default_photos(), "multipart")
    records = {"in-process": {c: [] for c in args.level_list}, "openai backend": {c: [] for c in args.level_list}}
    walls = {name: {c: 0.0 for c in args.level_list} for name in records}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="guidepost-hop-") as tmp:
        tmp = Path(tmp)
        # The front's rendered prompt (instructions + question) reaches the upstream as its question.
        upstream_env = {**COMMON, **cache, "GUIDEPOST_MAX_TEXT_CHARS": "2000"}
        with LocalServer(upstream_env, tmp / "upstream.log") as upstream:
            front_env = {**COMMON, **cache, "GUIDEPOST_PRESET": "front",
                         "GUIDEPOST_PRESETS_DIR": str(front_preset(tmp / "models")),
                         "GUIDEPOST_UPSTREAM_URL": f"{upstream.url}/v1", "GUIDEPOST_UPSTREAM_MODEL": "tiny-llava"}
            with LocalServer(front_env, tmp / "front.log") as front:
                runners = {"in-process": LoadRunner(upstream.url, payloads, progress=False),
                           "openai backend": LoadRunner(front.url, payloads, progress=False)}
                for runner in runners.values():
                    runner.run(Level(2, args.warmup, 300), time.perf_counter())
                t0 = time.perf_counter()
                for concurrency in args.level_list:
                    for round_ in range(args.rounds):
                        for name, runner in runners.items():
                            got, wall = runner.run(Level(concurrency, args.requests, 600), t0)
                            records[name][concurrency] += got
                            walls[name][concurrency] += wall
                            print(f"c={concurrency} round {round_ + 1} {name}: {len(got)} requests in {wall:.1f} s",
                                  flush=True)
    summary = {name: [summarise_level(records[name][c], walls[name][c], c, sla_ms=1500) for c in args.level_list]
               for name in records}
    rows = hop_rows(summary)
    print_rows(rows)
    date = dt.date.today().isoformat()
    report = {
        "command": "python bench/openai_hop.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": date,
        "commit": subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                                 text=True).stdout.strip() or None,
        "machine": {"cpus": len(os.sched_getaffinity(0)), "machine": platform.machine(),
                    "python": platform.python_version(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"levels": args.level_list, "requests_per_round": args.requests, "rounds": args.rounds,
                     "warmup": args.warmup, "servers": COMMON, "photos": [p.photo for p in payloads]},
        "definitions": {
            "added_ms": "the front's client latency minus the upstream's (in-process) at the same percentile",
            "throughput_ratio": "answers per second through the front / answers per second in-process",
            "upstream_detect_ms": "the in-process server's own detect stage (p50): part of the hop here only "
                                  "because the upstream is a Guidepost"},
        "hop": rows,
        "levels": summary,
    }
    path = args.output_dir / f"openai-hop-{date}.json"
    atomic_write(path, json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {path}")
    return 0


def hop_rows(summary: dict) -> list[dict]:
    """Per level: both latencies, what the hop adds at p50 and p95, both throughputs and their ratio."""
    rows = []
    for local, front in zip(summary["in-process"], summary["openai backend"]):
        a, b = local["latency_ms"], front["latency_ms"]
        rows.append({
            "concurrency": local["concurrency"], "answered": [local["statuses"].get("200", 0),
                                                              front["statuses"].get("200", 0)],
            "fallbacks": [local["fallback"], front["fallback"]],
            "in_process_ms": {"p50": a["p50"], "p95": a["p95"]}, "openai_backend_ms": {"p50": b["p50"], "p95": b["p95"]},
            "added_ms": {"p50": round(b["p50"] - a["p50"], 1), "p95": round(b["p95"] - a["p95"], 1)},
            "throughput_rps": [local["throughput_rps"], front["throughput_rps"]],
            "throughput_ratio": round(front["throughput_rps"] / local["throughput_rps"], 3),
            "upstream_detect_ms": local["server_ms"]["detect"]["p50"]})
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"{'c':>3} {'in-process p50/p95':>19} {'openai p50/p95':>16} {'added p50/p95':>15} {'ans/s local/front':>18} "
          f"{'ratio':>6} {'fallbacks':>9}")
    for row in rows:
        a, b, d = row["in_process_ms"], row["openai_backend_ms"], row["added_ms"]
        print(f"{row['concurrency']:>3} {a['p50']:>9.1f}/{a['p95']:<9.1f} {b['p50']:>7.1f}/{b['p95']:<8.1f} "
              f"{d['p50']:>7.1f}/{d['p95']:<7.1f} {row['throughput_rps'][0]:>8.2f}/{row['throughput_rps'][1]:<9.2f} "
              f"{row['throughput_ratio']:>6.2f} {row['fallbacks'][0]:>4}/{row['fallbacks'][1]:<4}")


if __name__ == "__main__":
    sys.exit(main())
