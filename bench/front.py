"""What the buffering front costs a request: the same server with GUIDEPOST_FRONT=off and on, measured in one run.

Starts both (tiny preset, `make serve`'s other defaults) side by side on 127.0.0.1 and sends the same requests to
each in turn, alternating which goes first, over one kept-alive connection per server (as a phone does):

    .venv/bin/python bench/front.py --requests 300

Per endpoint (GET /healthz: HTTP alone; POST /process with a 640x480 photo: a whole request) it reports the
client latency's median and p95 with the front off and on, their ratio and difference. Writes
bench/results/front-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guidepost import tiny  # noqa: E402
from guidepost.files import atomic_write  # noqa: E402
from guidepost_tools.loadtest.payloads import build_payloads, default_photos  # noqa: E402
from guidepost_tools.loadtest.server import LocalServer  # noqa: E402

CONFIGS = {"off": {"GUIDEPOST_FRONT": "off"}, "on": {"GUIDEPOST_FRONT": "on"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint and configuration")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    payload = build_payloads(default_photos()[:1], "multipart")[0]
    endpoints = {"GET /healthz": ("GET", "/healthz", None, {}),
                 "POST /process": ("POST", "/process", payload.body, {"Content-Type": payload.content_type})}
    with tempfile.TemporaryDirectory(prefix="guidepost-front-bench-") as tmp:
        cache = Path(tmp) / "model_cache"
        tiny.ensure_built("tiny-clip", cache)
        tiny.ensure_built("tiny-llava", cache)
        env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(cache)}
        servers = {name: LocalServer({**env, **extra}, Path(tmp) / f"{name}.log") for name, extra in CONFIGS.items()}
        try:
            for server in servers.values():
                server.start()
            pools = {name: urllib3.connection_from_url(s.url, maxsize=1, block=True, retries=False)
                     for name, s in servers.items()}
            latencies = {endpoint: measure(pools, spec, args.requests) for endpoint, spec in endpoints.items()}
        finally:
            for server in servers.values():
                server.stop()
    summary = {endpoint: summarise(runs) for endpoint, runs in latencies.items()}
    report = {"date": dt.date.today().isoformat(), "command": "python bench/front.py " + " ".join(sys.argv[1:]),
              "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "cpu": platform.processor() or platform.machine()},
              "what": "client latency in ms over one kept-alive connection per server, tiny preset, 1 worker; "
                      "the two servers run side by side and take each request in turn",
              "photo_bytes": len(payload.body), "requests": args.requests, "endpoints": summary}
    path = args.output_dir / f"front-{report['date']}.json"
    atomic_write(path, json.dumps(report, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


def measure(pools: dict, spec: tuple, requests: int) -> dict[str, list[float]]:
    """Latencies per configuration; each request goes to every server, the first one changing every time."""
    method, path, body, headers = spec
    names = list(pools)
    runs = {name: [] for name in names}
    for n in range(requests + 5):
        for name in names if n % 2 else reversed(names):
            started = time.perf_counter()
            response = pools[name].request(method, path, body=body, headers=headers, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"{name} {method} {path}: {response.status} {response.data[:200]!r}")
            if n >= 5:  # the first few warm connections and caches up
                runs[name].append(elapsed)
    return runs


def summarise(runs: dict[str, list[float]]) -> dict:
    """Median and p95 per configuration; on/off ratios and differences."""
    stats = {name: {"p50": statistics.median(values), "p95": statistics.quantiles(values, n=20)[-1]}
             for name, values in runs.items()}
    return {**{name: {k: round(v, 3) for k, v in s.items()} for name, s in stats.items()},
            "ratio_on_off": {k: round(stats["on"][k] / stats["off"][k], 3) for k in ("p50", "p95")},
            "added_ms": {k: round(stats["on"][k] - stats["off"][k], 3) for k in ("p50", "p95")}}


if __name__ == "__main__":
    sys.exit(main())
