"""bench/load.py end to end: a sweep against a running gunicorn compared with one it starts itself."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import psutil
import pytest

from guidepost.config import PROJECT_ROOT
from guidepost_tools.loadtest.server import is_gunicorn

pytestmark = pytest.mark.e2e
PHOTO = PROJECT_ROOT / "tests" / "data" / "example" / "images" / "coffee.jpg"


def test_sweep_compares_a_running_server_with_a_started_one(server, model_cache, tmp_path):
    base, proc, _ = server
    env = {**os.environ, "GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache)}
    started = "GUIDEPOST_WORKERS=1 GUIDEPOST_THREADS=2 GUIDEPOST_MAX_QUEUE=1 GUIDEPOST_MAX_IN_FLIGHT=1"
    run = subprocess.run([sys.executable, "bench/load.py", "--url", base, "--start", started, "--mode", "sweep",
                          "--levels", "1,4", "--requests", "8", "--warmup", "2", "--image", str(PHOTO),
                          "--format", "json", "--objects", "car, dog", "--output-dir", str(tmp_path), "--name", "t",
                          "--stream", "--no-progress"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ratios over the baseline" in run.stdout and "wrote" in run.stdout

    report = json.loads((tmp_path / "t.json").read_text())
    assert "records" not in report["targets"][0], "the committed summary holds no raw rows"
    with gzip.open(tmp_path / "t.records.jsonl.gz", "rt") as rows:
        records = [json.loads(line) for line in rows]
    assert report["settings"]["photos"] == [{"name": "coffee.jpg", "bytes": PHOTO.stat().st_size}]
    running, local = report["targets"]
    assert running["url"] == base and running["started_with"] is None
    assert local["started_with"]["GUIDEPOST_MAX_IN_FLIGHT"] == "1" and local["server"]["limits"]["max_in_flight"] == 1
    for target in (running, local):
        assert [level["concurrency"] for level in target["levels"]] == [1, 4]
        target["records"] = [r for r in records if r["target"] == target["label"]]
        assert len(target["records"]) == 16
        for level in target["levels"]:
            assert level["requests"] == 8 and sum(level["statuses"].values()) == 8
            # Refusals under load are 503 overloaded, answered with Retry-After; nothing else goes wrong.
            assert set(level["statuses"]) <= {"200", "503"} and set(level["errors"]) <= {"overloaded"}
            assert level["statuses"]["200"] >= 1 and level["throughput_rps"] > 0
            assert level["latency_ms"]["p50"] > 0 and level["sla"]["threshold_ms"] == 1500
            # Streamed: the hazard event comes before the whole answer, for every answered request.
            assert level["first_event_ms"]["count"] == level["statuses"]["200"] and level["verdict"]["share_within"] >= 0
            assert set(level["overhead_ms"]) == {"server_outside_models", "outside_server", "outside_models"}
            assert all(level["server_ms"][stage]["count"] == level["statuses"]["200"]
                       for stage in ("decode", "detect", "generate", "total"))
        first = target["levels"][0]
        assert first["statuses"] == {"200": 8}, "one client never overloads a worker"
        answered = [r for r in target["records"] if r["status"] == 200]
        # Every answer keeps the server's own stage timings beside the client's latency, for the overhead split.
        assert all(set(r["timings_ms"]) >= {"decode", "detect", "generate", "total"} and r["latency_ms"] is not None
                   for r in answered)
        assert all(r["first_event_ms"] <= r["latency_ms"] and "first_event" in r["timings_ms"] for r in answered)
        refused = [r for r in target["records"] if r["status"] == 503]
        assert all(r["code"] == "overloaded" and r["retry_after"] == 1 for r in refused)
        assert target["rss"]["samples"] and target["rss"]["peak_mib"] > 0, "both servers run on this machine"
    assert [row["concurrency"] for row in report["comparison"]["ratios"]] == [1, 4]
    assert report["comparison"]["baseline"] == base

    # The running server is found from its port (where the front's nginx listens) up to the gunicorn master, and its
    # memory is the master's, its workers' and the front's, not one worker's.
    assert running["rss"]["pid"] == proc.pid
    workers = [child for child in psutil.Process(proc.pid).children() if is_gunicorn(child.cmdline())]
    assert len(workers) == 2 and running["rss"]["start_mib"] * 2**20 > 0.9 * sum(w.memory_info().rss for w in workers)
    assert not psutil.pid_exists(local["rss"]["pid"]), "the started gunicorn was stopped and reaped"
    assert proc.poll() is None, "the running server is left running"
    for suffix in ("latency", "levels", "first-event", "stages", "rss"):
        assert (tmp_path / f"t-{suffix}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
