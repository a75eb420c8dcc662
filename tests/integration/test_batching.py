"""Batched generation: requests that reach a busy VLM are generated together, each exactly as it would be alone."""
from __future__ import annotations

import time

import pytest
import yaml

from guidepost.config import PROJECT_ROOT
from tests.helpers import presets_dir, started_app

FAMILIES = ["tiny-llava", "tiny-idefics3", "tiny-qwen2.5-vl", "tiny-deepseek-vl-hybrid"]


@pytest.fixture(scope="module", params=FAMILIES)
def vlm(request, model_cache, tmp_path_factory):
    """A family's tiny VLM through the real loading code, batching up to 4 requests."""
    preset = yaml.safe_load((PROJECT_ROOT / "models" / "tiny.yaml").read_text())
    preset["vlm"].update(id=request.param, batch={"max_size": 4, "window_ms": 0})
    folder = presets_dir(tmp_path_factory.mktemp("batch") / "models", batched=yaml.safe_dump(preset))
    app = started_app({"preset": "batched", "presets_dir": str(folder), "model_cache": str(model_cache),
                       "load": "eager"})
    return app.extensions["guidepost"].pipeline.vlm


def requests_for(photo, street_photo):
    """Mixed prompt lengths and image counts."""
    return [([photo], "Describe."), ([photo, street_photo], "Compare the two pictures, please, in some detail."),
            ([street_photo], "What is ahead of me on this street?")]


def together(vlm, monkeypatch, prepared, **stream_options):
    """Queue every request before the model's thread looks, so that it takes them as one batch."""
    monkeypatch.setattr(vlm, "_ensure_thread", lambda: None)
    deadline = time.monotonic() + 120
    generations = [vlm.stream(p, deadline=deadline, **options) for p, options in zip(prepared, stream_options["each"])]
    monkeypatch.undo()
    batches = []
    real = vlm.preprocess_batch
    monkeypatch.setattr(vlm, "preprocess_batch", lambda batch: batches.append(len(batch)) or real(batch))
    vlm._ensure_thread()
    return generations, batches


def answer(generation) -> str:
    for _ in generation:
        pass
    return generation.text


def test_each_answer_in_a_batch_equals_its_answer_alone(vlm, monkeypatch, photo, street_photo):
    prepared = [vlm.preprocess(images, prompt) for images, prompt in requests_for(photo, street_photo)]
    alone = [vlm.generate(p, deadline=time.monotonic() + 120, max_new_tokens=12) for p in prepared]
    generations, batches = together(vlm, monkeypatch, prepared, each=[{"max_new_tokens": 12}] * 3)
    assert [answer(g) for g in generations] == alone and all(alone)
    assert batches == [3], "one batch of three"


def test_a_request_leaving_early_does_not_stall_the_others(vlm, monkeypatch, photo, street_photo):
    prepared = [vlm.preprocess(images, prompt) for images, prompt in requests_for(photo, street_photo)]
    alone = [vlm.generate(p, deadline=time.monotonic() + 120, max_new_tokens=n) for p, n in zip(prepared, (2, 12, 12))]
    checks = iter(range(1000))
    leaves_at_the_fifth_token = lambda: next(checks) >= 4  # noqa: E731  (checked after each token)
    generations, batches = together(vlm, monkeypatch, prepared, each=[
        {"max_new_tokens": 2}, {"max_new_tokens": 12, "should_stop": leaves_at_the_fifth_token}, {"max_new_tokens": 12}])
    short, gone, rest = generations
    assert answer(short) == alone[0] and short.new_tokens == 2 and short.stopped_by == "length"
    assert answer(rest) == alone[2], "the others go on, each as if alone"
    answer(gone)
    assert gone.stopped_by == "cancelled" and gone.new_tokens == 5 and alone[1].startswith(gone.text)
    assert batches == [3]
