"""Load: requests beyond the VLM's slots get the detector's answer at once; only a full worker answers 503."""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import FakeVLM


class BlockedVLM(FakeVLM):
    """A VLM that holds the model until the test releases it, so admitted requests stay in flight."""

    name = "blocked"

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self._entered = threading.Semaphore(0)

    def before_token(self, index, stopping):
        if index == 0:
            self._entered.release()
            assert self.release.wait(30), "the test never released the VLM"

    def wait_entered(self, count: int) -> None:
        """Block until `count` requests have reached the model."""
        for _ in range(count):
            assert self._entered.acquire(timeout=30), "a request never reached the VLM"


class BlockedDetector:
    """A detector that waits until released, so requests stay in /process before the VLM."""

    def __init__(self, detector):
        self.detector, self.release, self.entered = detector, threading.Event(), threading.Semaphore(0)
        self.name = detector.name

    def detect(self, image):
        self.entered.release()
        assert self.release.wait(30)
        return self.detector.detect(image)


def post(app, jpeg, **fields):
    return app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "car",
                                                    **fields}, content_type="multipart/form-data")


@pytest.fixture
def blocked(make_app, monkeypatch):
    """Factory: an app with the given bounds whose VLM holds the model until released."""
    def _make(**bounds):
        app = make_app(**bounds)
        vlm = BlockedVLM()
        monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", vlm)
        return app, vlm
    return _make


def test_beyond_the_vlm_slot_the_detector_answers_at_once(blocked, jpeg):
    app, vlm = blocked(max_in_flight=1, max_queue=3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        admitted = pool.submit(post, app, jpeg)
        try:
            vlm.wait_entered(1)
            busy = post(app, jpeg)
            assert busy.status_code == 200, "a busy VLM is no reason to leave a pedestrian without a warning"
            body = busy.json
            assert body["fallback"] is True and body["reason"] == "busy" and body["danger"] is True
            assert body["result"].startswith("Caution: car")
            client = app.test_client()
            assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        finally:
            vlm.release.set()
        answered = admitted.result().json
        assert answered["fallback"] is False and answered["reason"] is None
    assert post(app, jpeg).json["fallback"] is False, "the VLM slot is given back"


def test_quick_mode_never_waits_for_the_vlm(blocked, jpeg):
    app, vlm = blocked(max_in_flight=1, max_queue=3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        admitted = pool.submit(post, app, jpeg)
        try:
            vlm.wait_entered(1)
            quick = post(app, jpeg, mode="quick").json
            assert quick["fallback"] is True and quick["reason"] == "quick" and quick["hazards"] == ["car"]
        finally:
            vlm.release.set()
        admitted.result()


def test_only_a_full_worker_refuses_with_503(make_app, monkeypatch, jpeg):
    app = make_app(max_queue=2, max_in_flight=1, threads=4)
    pipeline = app.extensions["guidepost"].pipeline
    detector = BlockedDetector(pipeline.detector)
    monkeypatch.setattr(pipeline, "detector", detector)
    with ThreadPoolExecutor(max_workers=2) as pool:
        taken = [pool.submit(post, app, jpeg, objects="") for _ in range(2)]
        try:
            for _ in range(2):
                assert detector.entered.acquire(timeout=30)
            refused = post(app, jpeg)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            error = refused.json["error"]
            assert error["code"] == "overloaded" and error["request_id"] and "GUIDEPOST_MAX_QUEUE" in error["message"]
        finally:
            detector.release.set()
        assert [future.result().status_code for future in taken] == [200, 200]
    assert post(app, jpeg).status_code == 200, "slots are given back"


def test_a_failing_request_gives_its_slot_back(blocked, jpeg):
    app, vlm = blocked(max_queue=1, max_in_flight=1, threads=2)
    vlm.release.set()
    bad = app.test_client().post("/process", data={"image": (io.BytesIO(b"not an image"), "p.jpg")},
                                 content_type="multipart/form-data")
    assert bad.status_code == 415
    assert post(app, jpeg).status_code == 200


def test_zero_means_no_bound(blocked, jpeg):
    app, vlm = blocked(max_queue=0, max_in_flight=0)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(post, app, jpeg) for _ in range(3)]
        try:
            vlm.wait_entered(1)  # one generates; the others wait for the model, none is turned away
        finally:
            vlm.release.set()
        assert [future.result().json["fallback"] for future in futures] == [False] * 3
