"""A failing or busy VLM never silences a hazard: the answer comes from the detector alone."""
from __future__ import annotations

import io
import logging
import threading

import pytest


class ExplodingVLM:
    """Stands in for a VLM whose generate() raises (CUDA OOM, a bad checkpoint...)."""

    name = "exploding"

    def generate(self, image, prompt, *, timeout_s, max_new_tokens=None):
        raise RuntimeError("CUDA out of memory /secret/path")


class ChattyVLM:
    """A VLM that answers the question and forgets the hazard."""

    name = "chatty"

    def generate(self, image, prompt, *, timeout_s, max_new_tokens=None):
        return "The sky is **blue** today. Have a nice walk!"


class SilentVLM:
    """A VLM that returns only special tokens and symbols: nothing to speak."""

    name = "silent"

    def generate(self, image, prompt, *, timeout_s, max_new_tokens=None):
        return "<end_of_utterance> 🚗 \ufffd"


def post(client, jpeg, **fields):
    return client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), **fields},
                       content_type="multipart/form-data", headers={"X-Request-ID": "req-42"})


@pytest.fixture
def pipeline(app):
    return app.extensions["guidepost"].pipeline


def test_generation_error_keeps_the_hazard(client, pipeline, monkeypatch, jpeg, caplog):
    monkeypatch.setattr(pipeline, "vlm", ExplodingVLM())
    with caplog.at_level(logging.WARNING, logger="app.pipeline"):
        response = post(client, jpeg, objects="dog, car")
    assert response.status_code == 200
    body = response.json
    assert body["fallback"] is True and body["danger"] is True and body["prompt"] == "danger"
    assert body["result"].startswith("Caution") and "car" in body["result"], "the most severe hazard is named"
    assert "secret" not in response.get_data(as_text=True)
    assert any("req-42" in r.getMessage() and "CUDA out of memory" in r.getMessage() for r in caplog.records)


def test_fallback_speaks_the_request_language(client, pipeline, monkeypatch, jpeg):
    monkeypatch.setattr(pipeline, "vlm", ExplodingVLM())
    body = post(client, jpeg, objects="car", lang="ko").json
    assert body["fallback"] is True and "자동차" in body["result"] and "주의" in body["result"]


def test_safe_fallback_lists_what_was_seen(client, pipeline, monkeypatch, jpeg):
    monkeypatch.setattr(pipeline, "vlm", ExplodingVLM())
    body = post(client, jpeg, objects="chair, cup").json
    assert body["fallback"] is True and body["danger"] is False
    assert "chair" in body["result"] and "No danger" in body["result"]


def test_answer_that_forgets_the_hazard_gets_the_warning_first(client, pipeline, monkeypatch, jpeg):
    monkeypatch.setattr(pipeline, "vlm", ChattyVLM())
    body = post(client, jpeg, objects="bicycle").json
    assert body["fallback"] is False
    assert body["result"] == "Caution: bicycle ahead. Stop and check your surroundings. The sky is blue today. Have a nice walk!"
    safe = post(client, jpeg, objects="tree").json
    assert safe["result"] == "The sky is blue today. Have a nice walk!", "safe answers are left alone"


def test_unspeakable_output_falls_back(client, pipeline, monkeypatch, jpeg):
    monkeypatch.setattr(pipeline, "vlm", SilentVLM())
    body = post(client, jpeg, objects="stairs").json
    assert body["fallback"] is True and "stairs" in body["result"]


def test_busy_vlm_times_out_to_fallback(make_app, jpeg):
    app = make_app(generate_timeout_s=0.3)
    vlm = app.extensions["guidepost"].pipeline.vlm
    release = threading.Event()
    holder = threading.Thread(target=lambda: (vlm._lock.acquire(), release.wait(10), vlm._lock.release()))
    holder.start()
    try:
        body = post(app.test_client(), jpeg, objects="truck").json
    finally:
        release.set()
        holder.join()
    assert body["fallback"] is True and body["danger"] is True and "truck" in body["result"]
    # Once the model is free again, answers come from the VLM.
    assert post(app.test_client(), jpeg, objects="truck").json["fallback"] is False


def test_unexpected_error_is_a_generic_500(client, pipeline, monkeypatch, jpeg, caplog):
    class BrokenDetector:
        def detect(self, image):
            raise RuntimeError("weights at /secret/model.bin are corrupt")
    monkeypatch.setattr(pipeline, "detector", BrokenDetector())
    with caplog.at_level(logging.ERROR):
        response = post(client, jpeg)
    assert response.status_code == 500 and response.json["error"]["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)
    assert any("req-42" in r.getMessage() for r in caplog.records)
    assert client.get("/healthz").status_code == 200
