"""The openai backend against upstreams that misbehave, on real loopback sockets: one that answers garbage, one that
never answers. Each request still gets the detector's answer (never a 500), and /readyz says why it is not ready.
A real Guidepost upstream under gunicorn is in tests/e2e/test_openai_gunicorn.py."""
from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from guidepost import ConfigError, create_app
from guidepost.pipeline import Pipeline
from guidepost.presets import UpstreamSpec, VLMSpec
from guidepost.scene import SceneRequest
from guidepost.vlm.upstream import UpstreamVLM
from tests.helpers import started_app


class Garbage(BaseHTTPRequestHandler):
    """200 for everything, with bodies no OpenAI client can read."""

    def do_GET(self):
        self._send("text/html", b"<html>it works!</html>")

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send("text/event-stream", b"data: {not json\n\n")

    def _send(self, kind, body):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def garbage_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def silent_url():
    """A port that accepts connections (the kernel's backlog) and never answers: an upstream hung past any deadline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_an_upstream_answering_garbage_gives_the_detector_s_answer(model_cache, garbage_url, jpeg):
    app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager", "backend": "openai",
                       "upstream_url": garbage_url})
    client = app.test_client()
    deadline = time.monotonic() + 30
    while (ready := client.get("/readyz")).json["upstream"]["state"] == "checking":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ready.status_code == 503 and ready.json["upstream"]["state"] == "error"
    for objects in ("car", "tree"):
        body = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": objects}).json
        assert body["fallback"] is True and body["reason"] == "error"
        assert body["result"].startswith("Caution: car") if objects == "car" else "No danger" in body["result"]
    app.extensions["guidepost"].backend.vlm.unwatch()


def test_an_upstream_silent_past_the_deadline_gives_the_detector_s_answer(app, silent_url, photo):
    vlm = UpstreamVLM(VLMSpec(id="m"), UpstreamSpec(url=silent_url, model="m", timeout_s=30), api_key="")
    generation = vlm.stream(vlm.preprocess([photo], "hi"), deadline=time.monotonic() + 0.5, poll_s=0.1)
    assert set(generation) == {None}, "keep-alives only: nothing came"
    assert generation.stopped_by == "deadline" and generation.text == "" and generation.new_tokens == 0

    local = app.extensions["guidepost"].pipeline
    pipeline = Pipeline(local.detector, vlm, local.vocabulary, local.prompts, max_words=40, deadline_s=1.0)
    result = pipeline.run(SceneRequest(images=(photo,), objects=["car"]))
    assert result.fallback is True and result.reason == "timeout" and result.result.startswith("Caution: car")


def test_a_silent_upstream_holds_start_up_for_its_timeout_only(model_cache, silent_url):
    started = time.monotonic()
    app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager", "backend": "openai",
                       "upstream_url": silent_url})  # the tiny preset's upstream timeout_s: the default 5 s
    assert time.monotonic() - started < 30, "the VLM warm-up waited on the upstream past its timeout_s"
    assert app.extensions["guidepost"].pipeline.vlm_warm.is_set()
    app.extensions["guidepost"].backend.vlm.unwatch()


def test_the_openai_backend_needs_an_upstream_url(model_cache):
    with pytest.raises(ConfigError, match="GUIDEPOST_UPSTREAM_URL"):
        create_app({"preset": "tiny", "model_cache": str(model_cache), "backend": "openai"})
    with pytest.raises(ConfigError, match="http:// or https://"):
        create_app({"preset": "tiny", "model_cache": str(model_cache), "backend": "openai",
                    "upstream_url": "gpu-box:8000"})
