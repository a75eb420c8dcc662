"""A real gunicorn on 127.0.0.1 with the tiny preset: readiness, a real photo, concurrent requests."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_cache, tmp_path_factory):
    """gunicorn with 2 workers on the tiny preset; stopped with SIGTERM and reaped."""
    port = _free_port()
    env = {**os.environ, "GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache),
           "GUIDEPOST_BIND": f"127.0.0.1:{port}", "GUIDEPOST_WORKERS": "2", "GUIDEPOST_THREADS": "4"}
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready_workers = set()
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                # Each worker loads its own models: wait until both have answered "ready".
                response = requests.get(f"{base}/readyz", timeout=2)
                if response.status_code == 200:
                    ready_workers.add(response.json()["worker"])
                if len(ready_workers) == 2:
                    break
            except requests.RequestException:  # not listening yet, or busy importing torch
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"gunicorn did not become ready:\n{log.read_text()[-3000:]}")
        yield base, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # never SIGKILL the master: its workers would be orphaned
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_real_photo_and_eight_concurrent_requests(server, jpeg):
    base, proc, log = server
    response = requests.post(f"{base}/process", files={"image": ("astronaut.jpg", jpeg, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["objects_source"] == "clip"

    def one(i: int):
        fields = {"objects": "car, dog"} if i % 2 else {"text": f"What is ahead? ({i})"}
        r = requests.post(f"{base}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")}, data=fields, timeout=60)
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert [status for status, _ in results] == [200] * 8
    assert all(body["danger"] for i, (_, body) in enumerate(results) if i % 2)
    assert len({body["request_id"] for _, body in results}) == 8


def test_workers_share_the_cores(server):
    base, proc, log = server
    info = requests.get(f"{base}/info", timeout=5).json()
    assert info["torch_threads"] == max(1, len(os.sched_getaffinity(0)) // 2), "2 workers: cores / 2 torch threads each"


def test_client_mistakes_do_not_hurt_the_server(server, jpeg):
    base, proc, log = server
    assert requests.post(f"{base}/process", data=b"garbage", headers={"Content-Type": "image/png"},
                         timeout=10).status_code == 415
    assert requests.post(f"{base}/process", files={"image": ("x.jpg", b"nope", "image/jpeg")},
                         timeout=10).status_code == 415
    assert requests.post(f"{base}/process", data=b"x" * (30 * 2**20),
                         headers={"Content-Type": "application/json"}, timeout=30).status_code == 413
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    assert proc.poll() is None


def test_batch_against_the_server(server, app, tmp_path):
    base, _, _ = server
    data = tmp_path / "data.jsonl"
    example = PROJECT_ROOT / "tests" / "data" / "example"
    lines = [line for line in (example / "data.jsonl").read_text().splitlines() if line.strip()]
    data.write_text("\n".join(lines + [json.dumps({"image": "missing.jpg"})]) + "\n")
    for image in (example / "images").glob("*.jpg"):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / image.name).write_bytes(image.read_bytes())
    result = app.test_cli_runner().invoke(args=["batch", "--input", str(data), "--output-dir", str(tmp_path / "out"),
                                                "--server", base, "--concurrency", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").glob("batch_*")
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert [r["sample_id"] for r in records] == [f"{n:06d}" for n in range(len(lines) + 1)], "input order kept"
    assert all(r["error"] is None for r in records[:-1]) and records[-1]["error"]["code"] == "missing_image"
    assert records[1]["output"]["hazards"] == ["motorcycle"], "client objects travel over HTTP"
    assert records[-2]["output"]["model"]["vlm"] == "tiny-llava"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["settings"]["server"] == base and summary["counts"]["succeeded"] == len(lines)


def test_sigterm_shuts_down_cleanly(server):
    base, proc, log = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert "Shutting down" in log.read_text()

