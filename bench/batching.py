"""Batched generation vs one request at a time: throughput and latency at 1, 2, 4 and 8 concurrent clients.

Default preset's architectures (SmolVLM-256M + OpenCLIP ViT-B-32) with RANDOM weights (speed does not depend on
weight values; nothing is downloaded), loaded through the real loading code, answering scikit-image's photographs
through the Flask test client from N client threads. Each level runs with batching off (`vlm.batch.max_size: 1`)
and on (max_size 8), interleaved, in one run, with GUIDEPOST_MAX_IN_FLIGHT and GUIDEPOST_MAX_QUEUE raised so every
client reaches the VLM.

    .venv/bin/python bench/batching.py [--requests 16] [--max-new-tokens 32] [--levels 1,2,4,8] \
        [--config "torch, one tile" | "openvino int8, one tile"]

Writes bench/results/batching-<date>-<backend>.json and .png.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.architectures import build_smolvlm_256m, built  # noqa: E402
from bench.request_cost import CONFIGS, photos, preset_folder  # noqa: E402
from guidepost import create_app  # noqa: E402
from guidepost.config import PROJECT_ROOT  # noqa: E402

SETTINGS = {"off": {"max_size": 1, "window_ms": 0}, "on": {"max_size": 8, "window_ms": 20}}


def app_for(vlm_dir: Path, config: str, batch: dict, max_new_tokens: int, cache: Path, tmp: Path):
    """The default preset's architecture (configured as request_cost.CONFIGS[config]) with the given batching."""
    (tmp / f"b{batch['max_size']}").mkdir(exist_ok=True)
    folder = preset_folder(vlm_dir, config, max_new_tokens, tmp / f"b{batch['max_size']}")
    preset = yaml.safe_load((folder / "default.yaml").read_text())
    preset["vlm"]["batch"] = batch
    (folder / "default.yaml").write_text(yaml.safe_dump(preset))
    return open_app(folder, cache)


def open_app(presets_dir: Path, cache: Path, preset: str = "default"):
    """A loaded app on the presets folder whose bounds let every client reach the VLM (threads, queue, deadline)."""
    app = create_app({"presets_dir": str(presets_dir), "preset": preset, "model_cache": str(cache), "load": "eager",
                      "threads": 32, "max_queue": 31, "max_in_flight": 31, "generate_timeout_s": 600})
    app.extensions["guidepost"].start()
    return app


def level(app, images: list[bytes], clients: int, requests: int) -> dict:
    """`requests` answers from `clients` closed-loop threads: throughput and latency percentiles."""
    def one(n: int) -> tuple[float, bool]:
        started = time.perf_counter()
        body = app.test_client().post("/process", data={"image": (io.BytesIO(images[n % len(images)]), "p.jpg"),
                                                        "objects": "tree"}).json
        return (time.perf_counter() - started) * 1000, body["fallback"] and body["reason"] != "unspeakable"
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        rows = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(ms for ms, _ in rows)
    return {"clients": clients, "requests": requests, "wall_s": round(wall, 2),
            "throughput_rps": round(requests / wall, 3), "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(latencies[max(0, round(0.95 * len(latencies)) - 1)], 1),
            "busy_or_error_fallbacks": sum(fallback for _, fallback in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=16, help="requests per level and setting")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens decoded per answer")
    parser.add_argument("--levels", default="1,2,4,8", help="concurrent clients")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "model_cache", help="model cache folder")
    parser.add_argument("--config", default="torch, one tile", choices=[c for c in CONFIGS if "one tile" in c],
                        help="the default preset's backend and weights")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    vlm_dir = built(args.cache, "smolvlm-256m-random", build_smolvlm_256m)
    images = list(photos().values())
    results: dict = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        apps = {name: app_for(vlm_dir, args.config, batch, args.max_new_tokens, args.cache, Path(tmp))
                for name, batch in SETTINGS.items()}
        for clients in levels:
            for name, app in apps.items():  # interleaved: a burst of load on the machine hits both alike
                results[name].append(level(app, images, clients, max(args.requests, clients)))
                print(f"batching {name:3s} {results[name][-1]}", flush=True)
    ratios = {f"throughput_on_over_off_at_{row_on['clients']}": round(row_on["throughput_rps"] / row_off["throughput_rps"], 2)
              for row_off, row_on in zip(results["off"], results["on"])}
    import torch
    report = {"command": "python bench/batching.py " + " ".join(sys.argv[1:]), "date": dt.date.today().isoformat(),
              "machine": {"cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "torch_threads": torch.get_num_threads()},
              "what": f"default preset's architectures, random weights, {args.config} on the CPU, through the "
                      "Flask test client; every answer decodes max_new_tokens tokens (min_new_tokens set)",
              "config": args.config,
              "max_new_tokens": args.max_new_tokens, "settings": SETTINGS, "levels": results, "ratios": ratios}
    backend = args.config.split(",")[0].replace(" ", "-")
    out = PROJECT_ROOT / "bench" / "results" / f"batching-{report['date']}-{backend}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    chart(results, out.with_suffix(".png"), args.config)
    print(json.dumps(ratios, indent=2))
    print(f"wrote {out}.json/.png")


def chart(results: dict, path: Path, config: str) -> None:
    """Throughput and p50/p95 latency per level, batching off vs on."""
    from guidepost_tools.loadtest.plots import concurrency_axis  # first: it selects matplotlib's file-only backend
    import matplotlib.pyplot as plt

    fig, (tput, lat) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, rows) in enumerate(results.items()):
        xs = [row["clients"] for row in rows]
        tput.plot(xs, [row["throughput_rps"] for row in rows], "-o", color=f"C{i}", label=f"batching {name}")
        lat.plot(xs, [row["p50_ms"] / 1000 for row in rows], "-o", color=f"C{i}", label=f"batching {name} p50")
        lat.plot(xs, [row["p95_ms"] / 1000 for row in rows], "--", color=f"C{i}", label=f"batching {name} p95")
    for ax, title, ylabel in ((tput, "Throughput", "answers per second"), (lat, "Latency", "seconds")):
        concurrency_axis(ax, [row["clients"] for row in next(iter(results.values()))], title, ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(f"Default preset's architectures (random weights), {config} on the CPU", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
