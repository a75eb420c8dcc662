"""Overload: a worker admits GUIDEPOST_MAX_IN_FLIGHT requests; the next gets 503 overloaded at once."""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import FakeVLM


class BlockedVLM(FakeVLM):
    """A VLM whose generate() waits until the test releases it, so admitted requests stay in flight."""

    name = "blocked"

    def __init__(self):
        self.release = threading.Event()
        self._entered = threading.Semaphore(0)

    def answer(self, inputs):
        self._entered.release()
        assert self.release.wait(30), "the test never released the VLM"
        return "A clear path ahead."

    def wait_entered(self, count: int) -> None:
        """Block until `count` requests are inside generate()."""
        for _ in range(count):
            assert self._entered.acquire(timeout=30), "a request never reached the VLM"


def post(app, jpeg):
    return app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "tree"},
                                  content_type="multipart/form-data")


@pytest.fixture
def blocked(make_app, monkeypatch):
    """Factory: an app admitting `limit` requests at once, whose VLM blocks until released."""
    def _make(limit: int):
        app = make_app(max_in_flight=limit)
        vlm = BlockedVLM()
        monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", vlm)
        return app, vlm
    return _make


def test_full_worker_refuses_at_once_and_recovers(blocked, jpeg):
    app, vlm = blocked(2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        admitted = [pool.submit(post, app, jpeg) for _ in range(2)]
        try:
            vlm.wait_entered(2)
            refused = post(app, jpeg)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            error = refused.json["error"]
            assert error["code"] == "overloaded" and error["request_id"]
            assert "GUIDEPOST_MAX_IN_FLIGHT" in error["message"]
            client = app.test_client()
            assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200, \
                "probes are never refused"
        finally:
            vlm.release.set()
        assert [future.result().status_code for future in admitted] == [200, 200]
    assert post(app, jpeg).status_code == 200, "slots are given back"


def test_a_failing_request_gives_its_slot_back(blocked, jpeg):
    app, vlm = blocked(1)
    vlm.release.set()
    bad = app.test_client().post("/process", data={"image": (io.BytesIO(b"not an image"), "p.jpg")},
                                 content_type="multipart/form-data")
    assert bad.status_code == 415
    assert post(app, jpeg).status_code == 200


def test_zero_means_no_bound(blocked, jpeg):
    app, vlm = blocked(0)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(post, app, jpeg) for _ in range(3)]
        try:
            vlm.wait_entered(3)  # all three admitted at once
        finally:
            vlm.release.set()
        assert [future.result().status_code for future in futures] == [200] * 3
