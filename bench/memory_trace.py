"""Where a worker's memory grows under load: RSS and Python's traced heap every 100 requests, and the tracemalloc
allocation sites that grew most between a third of the run and its end.

Tiny preset, in-process through the Flask app (the same decode → pipeline → encode as gunicorn), N client threads,
scikit-image's photographs as multipart bodies:

    .venv/bin/python bench/memory_trace.py --requests 3000 --clients 4

Writes bench/results/memory-trace-<date>.json. tracemalloc sees Python allocations only: RSS growth beyond the traced
heap is native (torch, the allocator's arenas).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import sys
import tempfile
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guidepost import create_app  # noqa: E402
from guidepost_tools.loadtest.payloads import build_payloads, default_photos  # noqa: E402

STEP = 100  # requests between samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help=f"a multiple of {STEP}")
    parser.add_argument("--clients", type=int, default=4, help="client threads (a 2-worker soak at 8 sends 4 each)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.requests < STEP or args.requests % STEP:
        parser.error(f"--requests must be a multiple of {STEP} (a sample every {STEP} requests)")

    app = create_app({"preset": "tiny", "model_cache": tempfile.mkdtemp(prefix="guidepost-mem-"), "load": "eager"})
    app.extensions["guidepost"].start()
    payloads = build_payloads(default_photos(), "multipart")
    clients: dict[int, object] = {}

    def post(i: int) -> int:
        client = clients.setdefault(threading.get_ident(), app.test_client())
        payload = payloads[i % len(payloads)]
        return client.post("/process", data=payload.body, content_type=payload.content_type).status_code

    process, samples, statuses, snapshots = psutil.Process(), [], {}, {}
    checkpoint = max(STEP, (args.requests // 3) // STEP * STEP)  # a sample exists there, however short the run
    tracemalloc.start(15)
    with ThreadPoolExecutor(args.clients) as pool, tqdm(total=args.requests, unit="req") as bar:
        for done in range(STEP, args.requests + 1, STEP):
            for status in pool.map(post, range(done - STEP, done)):
                statuses[status] = statuses.get(status, 0) + 1
            gc.collect()
            samples.append([done, round(process.memory_info().rss / 2**20, 2),
                            round(tracemalloc.get_traced_memory()[0] / 2**20, 3)])
            if done in (checkpoint, args.requests):
                snapshots[done] = tracemalloc.take_snapshot()
            bar.update(STEP)
    top = snapshots[args.requests].compare_to(snapshots[checkpoint], "traceback")[:10]
    result = {
        "command": " ".join(["python", *sys.argv]), "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs, "
                   f"{psutil.virtual_memory().total / 2**30:.1f} GiB, load average {psutil.getloadavg()}",
        "statuses": statuses, "columns": ["requests", "rss_mib", "python_traced_mib"], "samples": samples,
        f"growth_between_request_{checkpoint}_and_{args.requests}_top10": [
            {"growth_kib": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff,
             "traceback": stat.traceback.format()[-8:]} for stat in top],
    }
    path = args.out / f"memory-trace-{dt.date.today()}.json"
    path.write_text(json.dumps(result, indent=1))
    first, last = next(s for s in samples if s[0] == checkpoint), samples[-1]
    print(f"RSS {first[1]:.1f} → {last[1]:.1f} MiB ({last[1] / first[1] - 1:+.1%}), Python heap "
          f"{first[2]:.2f} → {last[2]:.2f} MiB between request {checkpoint} and {args.requests}; {path}")


if __name__ == "__main__":
    main()
