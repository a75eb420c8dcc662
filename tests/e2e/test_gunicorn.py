"""A real gunicorn on 127.0.0.1 with the tiny preset: readiness, a real photo, concurrent requests, overload."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from urllib3 import encode_multipart_formdata

from guidepost.config import PROJECT_ROOT
from guidepost_tools.http_client import retrying_session
from guidepost_tools.loadtest.server import LocalServer, local_server_pid
from tests.helpers import FlaskCli, encode, metric_samples, metric_total

pytestmark = pytest.mark.e2e


def test_real_photo_and_eight_concurrent_requests(server, jpeg):
    base, proc, log = server
    response = requests.post(f"{base}/process", files={"image": ("astronaut.jpg", jpeg, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["objects_source"] == "clip"

    refusals = []

    def one(i: int):
        # 8 at once is more than 2 workers x GUIDEPOST_MAX_IN_FLIGHT: retry 503s as Retry-After asks, like a client.
        session = retrying_session(30)
        fields = {"objects": "car, dog"} if i % 2 else {"text": f"What is ahead? ({i})"}
        r = session.post(f"{base}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")}, data=fields, timeout=120,
                         hooks={"response": lambda r, *a, **k: refusals.append(r) if r.status_code == 503 else None})
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert [status for status, _ in results] == [200] * 8
    assert all(r.json()["error"]["code"] == "overloaded" and r.headers["Retry-After"] == "1" for r in refusals)
    assert all(body["danger"] for i, (_, body) in enumerate(results) if i % 2)
    assert len({body["request_id"] for _, body in results}) == 8


def test_workers_share_the_cores(server):
    base, proc, log = server
    threads = requests.get(f"{base}/info", timeout=5).json()["torch_threads"]
    assert threads >= 1 and 2 * threads <= max(2, len(os.sched_getaffinity(0))), "2 workers never oversubscribe"


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


def test_without_the_front_unread_bodies_keep_or_close_their_connection(model_cache, tmp_path, jpeg):
    # gunicorn drops a kept-alive connection when > 64 KiB of a body was left unread (after announcing keep-alive):
    # every early refusal (405 here, 401 or 503 overloaded alike) must read it, Content-Length or chunked, or the
    # client's next request fails; a chunked body over the limit cannot be read to its end, so it closes.
    env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_FRONT": "off",
           "GUIDEPOST_MAX_IMAGE_MB": "0.5"}
    body = jpeg + b"\0" * (200_000 - len(jpeg))
    with LocalServer(env, tmp_path / "server.log", ready_timeout_s=120) as local:
        assert local_server_pid(local.url) == local.proc.pid, "the master, not the worker that holds the socket too"
        connection = http.client.HTTPConnection(urlsplit(local.url).hostname, urlsplit(local.url).port, timeout=30)
        try:
            for chunked in (False, True, False, True):
                payload = iter([body[i:i + 10_000] for i in range(0, len(body), 10_000)]) if chunked else body
                connection.request("POST", "/healthz", body=payload, encode_chunked=chunked,
                                   headers={"Content-Type": "application/octet-stream"})
                response = connection.getresponse()
                assert response.status == 405 and response.getheader("Connection") == "keep-alive"
                response.read()
            connection.request("GET", "/healthz")  # the same socket: http.client never reconnects by itself
            healthz = connection.getresponse()
            assert healthz.status == 200 and healthz.read()
            too_big = iter([b"x" * 100_000] * 10)  # 1 MB, over the 0.5 MB image's body limit
            connection.request("POST", "/process", body=too_big, encode_chunked=True,
                               headers={"Content-Type": "multipart/form-data; boundary=B"})
            response = connection.getresponse()
            error = json.loads(response.read())["error"]
            assert response.status == 413 and "GUIDEPOST_MAX_IMAGE_MB" in error["message"], error
            assert response.getheader("Connection") == "close", "announced, not a surprise"
        finally:
            connection.close()


def test_batch_against_the_server(server, app, tmp_path):
    base, _, _ = server
    data = tmp_path / "data.jsonl"
    example = PROJECT_ROOT / "tests" / "data" / "example"
    lines = [line for line in (example / "data.jsonl").read_text().splitlines() if line.strip()]
    data.write_text("\n".join(lines + [json.dumps({"image": "missing.jpg"})]) + "\n")
    for image in (example / "images").glob("*.jpg"):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / image.name).write_bytes(image.read_bytes())
    result = FlaskCli(app).invoke(args=["batch", "--input", str(data), "--output-dir", str(tmp_path / "out"),
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


def front_spooling(gunicorn: int) -> bool:
    """Whether the master's nginx front holds a request body in a temporary file (open, already unlinked by nginx)."""
    for nginx in psutil.Process(gunicorn).children(recursive=True):
        if "nginx" not in nginx.name():
            continue
        for fd in Path(f"/proc/{nginx.pid}/fd").iterdir():
            try:
                if "/tmp/body/" in os.readlink(fd):
                    return True
            except OSError:  # closed meanwhile
                continue
    return False


def in_flight(url: str) -> float:
    """/process requests the server is answering now, from its /metrics."""
    return metric_total(metric_samples(requests.get(f"{url}/metrics", timeout=30).text), "guidepost_requests_in_flight")


@pytest.mark.parametrize("front", ["on", "off"])
def test_sigterm_finishes_the_request_in_flight(model_cache, tmp_path, photo, front):
    # Its own server: stopping the module's shared one would break the tests that run after this one.
    env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_WORKERS": "1",
           "GUIDEPOST_MAX_IN_FLIGHT": "1", "GUIDEPOST_MAX_QUEUE": "1", "GUIDEPOST_THREADS": "2", "GUIDEPOST_FRONT": front}
    big = encode(photo.resize((1024, 1024)), "JPEG", quality=95)  # half of it is more than the front keeps in RAM
    body, content_type = encode_multipart_formdata([("image", ("p.jpg", big, "image/jpeg"))])
    with LocalServer(env, tmp_path / "server.log", ready_timeout_s=120) as local:
        host, port = urlsplit(local.url).hostname, urlsplit(local.url).port
        with socket.create_connection((host, port), timeout=60) as upload:
            head = (f"POST /process HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            upload.sendall(head + body[:len(body) // 2])
            deadline = time.monotonic() + 60
            if front == "on":  # the front is reading this body: past 64 KiB it waits in a temporary file
                while not front_spooling(local.proc.pid):
                    assert time.monotonic() < deadline, "the front never started reading the upload"
                    time.sleep(0.05)
            else:  # gunicorn itself is reading it: the request holds the worker's only admission slot
                # Only once it is inside /process: a request sent sooner could take the slot first.
                while in_flight(local.url) < 1:
                    assert time.monotonic() < deadline, "the slow upload never reached the view"
                    time.sleep(0.05)
                assert requests.post(f"{local.url}/process", files={"image": ("q.jpg", big)}, timeout=30).status_code == 503
            local.proc.send_signal(signal.SIGTERM)
            upload.sendall(body[len(body) // 2:])
            response = http.client.HTTPResponse(upload)
            response.begin()
            assert response.status == 200 and json.loads(response.read())["result"]
        assert local.proc.wait(timeout=60) == 0
        assert "Shutting down" in local.log_tail()
