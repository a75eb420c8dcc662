"""Worker start: time to /healthz and to /readyz, worker RSS and which heavy modules a worker imported.

Starts gunicorn (one worker, the tiny preset) from each given checkout in turn, interleaved over rounds, and
reports the medians and their ratios to the first checkout — e.g. before vs after a change, in one run:

    git worktree add /tmp/guidepost-before <commit>
    .venv/bin/python bench/worker_start.py --root /tmp/guidepost-before --root . --rounds 5

Each checkout runs with this venv's interpreter (its packages must import there). Writes
bench/results/worker-start-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guidepost_tools.loadtest.server import free_port, is_gunicorn  # noqa: E402

# Libraries only the tools need: a worker that maps one of their shared objects or files imported it.
HEAVY = ("matplotlib", "nltk", "rouge_score", "kiwipiepy", "sklearn", "skimage", "guidepost_tools")


def start_once(root: Path, cache: Path) -> dict:
    """One gunicorn start from root: seconds to the first /healthz and /readyz 200, then the worker's memory."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GUIDEPOST_")},
           "GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(cache), "GUIDEPOST_BIND": f"127.0.0.1:{port}",
           "GUIDEPOST_WORKERS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    started = time.perf_counter()
    proc = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {}
    try:
        for path in ("healthz", "readyz"):
            while path not in result:
                if proc.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError(f"gunicorn in {root} did not answer /{path}")
                try:
                    if requests.get(f"http://127.0.0.1:{port}/{path}", timeout=2).status_code == 200:
                        result[path] = round(time.perf_counter() - started, 3)
                        continue
                except requests.RequestException:
                    pass
                time.sleep(0.02)
        # The master's first child may be the front's nginx (started before the workers).
        worker = next(c for c in psutil.Process(proc.pid).children() if is_gunicorn(c.cmdline()))
        result["worker_rss_mib"] = round(worker.memory_info().rss / 2**20, 1)
        mapped = " ".join(m.path for m in worker.memory_maps())
        result["heavy_modules"] = sorted(name for name in HEAVY if f"/{name}/" in mapped)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", action="append", type=Path, required=True, help="a checkout (repeat; first = baseline)")
    parser.add_argument("--rounds", type=int, default=5, help="starts per checkout, interleaved")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guidepost-start-") as cache:
        for root in args.root:  # build the tiny models and embeddings once, outside the measurement
            start_once(root.resolve(), Path(cache))
        runs = {str(root): [] for root in args.root}
        for round_ in range(args.rounds):
            for root in args.root:
                runs[str(root)].append(start_once(root.resolve(), Path(cache)))
                print(f"round {round_ + 1} {root}: {runs[str(root)][-1]}", flush=True)
    medians = {root: {key: statistics.median(r[key] for r in rounds) for key in ("healthz", "readyz", "worker_rss_mib")}
               | {"heavy_modules": rounds[-1]["heavy_modules"]} for root, rounds in runs.items()}
    base = medians[str(args.root[0])]
    ratios = {root: {key: round(m[key] / base[key], 3) for key in ("healthz", "readyz", "worker_rss_mib")}
              for root, m in medians.items()}
    report = {"date": dt.date.today().isoformat(), "command": "python bench/worker_start.py " + " ".join(sys.argv[1:]),
              "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "cpu": platform.processor() or platform.machine()},
              "what": "gunicorn, 1 worker, tiny preset, GUIDEPOST_LOAD=background; seconds from spawn to the first 200",
              "medians": medians, "ratios_to_first": ratios, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"worker-start-{report['date']}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps({"medians": medians, "ratios_to_first": ratios}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
