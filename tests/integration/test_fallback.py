"""A failing or busy VLM never silences a hazard: the answer comes from the detector alone."""
from __future__ import annotations

import io
import logging
import threading

import pytest

from tests.helpers import FakeVLM


class ExplodingVLM(FakeVLM):
    """Stands in for a VLM whose generate() raises (CUDA OOM, a bad checkpoint...)."""

    name = "exploding"

    def answer(self, inputs):
        raise RuntimeError("CUDA out of memory /secret/path")


class ChattyVLM(FakeVLM):
    """A VLM that answers the question and forgets the hazard."""

    name = "chatty"

    def answer(self, inputs):
        return "The sky is **blue** today. Have a nice walk!"


class SilentVLM(FakeVLM):
    """A VLM that returns only special tokens and symbols: nothing to speak."""

    name = "silent"

    def answer(self, inputs):
        return "<end_of_utterance> 🚗 \ufffd"


def post(client, jpeg, **fields):
    return client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), **fields},
                       content_type="multipart/form-data", headers={"X-Request-ID": "req-42"})


@pytest.fixture
def pipeline(app):
    return app.extensions["guidepost"].pipeline


def test_generation_error_keeps_the_hazard(client, pipeline, monkeypatch, jpeg, caplog):
    monkeypatch.setattr(pipeline, "vlm", ExplodingVLM())
    with caplog.at_level(logging.WARNING, logger="guidepost.pipeline"):
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


class FixedVLM(FakeVLM):
    """A VLM that always gives the same answer."""

    name = "fixed"

    def __init__(self, text):
        super().__init__()
        self.text = text

    def answer(self, inputs):
        return self.text


@pytest.mark.parametrize("answer,objects,lang,warned", [
    ("Be careful, the sidewalk ahead looks clear.", "car", "en", True),    # "car" only inside "careful"
    ("Watch the whole path.", "hole", "en", True),                         # "hole" only inside "whole"
    ("의자 두 개가 있습니다.", "dog", "ko", True),                             # 개 is also a counting word
    ("Two cars are coming from the left. Step back.", "car", "en", False),  # named: no extra warning
    ("자동차가 다가옵니다. 멈추세요.", "car", "ko", False),
])
def test_warning_is_added_unless_the_hazard_is_named_as_a_word(client, pipeline, monkeypatch, jpeg, answer,
                                                                 objects, lang, warned):
    monkeypatch.setattr(pipeline, "vlm", FixedVLM(answer))
    result = post(client, jpeg, objects=objects, lang=lang).json["result"]
    assert result.startswith(("Caution", "주의")) is warned
    assert result.endswith(answer)


def test_bfloat16_inputs_reach_the_model(make_app, jpeg):
    # Every floating input must be cast to the model dtype, or a bf16 GPU deployment falls back on every request.
    app = make_app(dtype="bfloat16")
    assert str(app.extensions["guidepost"].pipeline.vlm.model.dtype) == "torch.bfloat16"
    assert post(app.test_client(), jpeg, objects="car").json["fallback"] is False


def test_unspeakable_output_falls_back(client, pipeline, monkeypatch, jpeg):
    monkeypatch.setattr(pipeline, "vlm", SilentVLM())
    body = post(client, jpeg, objects="stairs").json
    assert body["fallback"] is True and "stairs" in body["result"]


def test_busy_vlm_times_out_to_fallback(make_app, monkeypatch, jpeg):
    app = make_app(generate_timeout_s=0.5, max_in_flight=0)
    vlm = app.extensions["guidepost"].pipeline.vlm
    entered, release = threading.Event(), threading.Event()
    real_forward = vlm.forward

    def held(*args, **kwargs):  # another request is generating and keeps the model busy
        entered.set()
        assert release.wait(30)
        return real_forward(*args, **kwargs)
    monkeypatch.setattr(vlm, "forward", held)
    holder = threading.Thread(target=post, args=(app.test_client(), jpeg))
    holder.start()
    assert entered.wait(30)
    try:
        body = post(app.test_client(), jpeg, objects="truck").json
    finally:
        release.set()
        holder.join()
    assert body["fallback"] is True and body["reason"] == "busy" and body["danger"] is True and "truck" in body["result"]
    monkeypatch.setattr(vlm, "forward", real_forward)
    # Once the model is free again (and the deadline is generous), answers come from the VLM.
    app.extensions["guidepost"].pipeline.deadline_s = 60
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


def test_a_bug_in_speech_cleaning_is_a_bug_not_a_fallback(client, monkeypatch, jpeg):
    # Only the model's own failures become detector answers; a bug around it must show, not hide as fallbacks.
    def broken(text, max_words):
        raise TypeError("cleaning bug")
    monkeypatch.setattr("guidepost.pipeline.clean_for_speech", broken)
    response = post(client, jpeg, objects="tree")
    assert response.status_code == 500 and response.json["error"]["code"] == "internal_error"
