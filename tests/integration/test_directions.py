"""Direction words: where a hazard is, from left/centre/right crops scored in the same forward as the whole image."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from guidepost.detector.clip import ClipDetector
from guidepost.hazards import Detection
from guidepost.presets import DetectorSpec
from guidepost_tools.photos import sample_photo
from tests.helpers import FakeVLM, encode, presets_dir


class ColourEncoder:
    """A stand-in image tower whose embedding is a view's mean colour: red things and blue things are told apart."""

    identity = "colour"

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.batches = getattr(self, "batches", []) + [pixels.shape[0]]
        return pixels.mean(dim=(2, 3))


def colour_detector(vocab) -> ClipDetector:
    """car = red, bicycle = green, tree = blue; one image of the whole scene plus three crops per forward."""
    entries = [vocab.get("car"), vocab.get("bicycle"), vocab.get("tree")]
    text = torch.eye(3)  # the label embeddings: pure red, green, blue

    def transform(image):
        return torch.from_numpy(np.asarray(image.convert("RGB").resize((16, 16)), dtype=np.float32) / 255).permute(2, 0, 1)
    return ClipDetector(ColourEncoder(), transform, text, entries, DetectorSpec(arch="colour", threshold=0.0, top_k=3),
                        logit_scale=10.0, name="colour")


def scene(where: str) -> Image.Image:
    """A blue street with a red car filling a third of the frame on one side (or in the middle)."""
    image = Image.new("RGB", (600, 300), (0, 0, 255))
    x = {"left": 0, "ahead": 200, "right": 400}[where]
    image.paste(Image.new("RGB", (200, 300), (255, 0, 0)), (x, 0))
    return image


@pytest.fixture(scope="module")
def vocab(app):
    return app.extensions["guidepost"].vocabulary


@pytest.mark.parametrize("where", ["left", "ahead", "right"])
def test_the_hazard_is_where_its_crop_scores_highest(vocab, where):
    detector = colour_detector(vocab)
    found = {d.label: d.direction for d in detector.detect(scene(where))}
    assert found["car"] == where
    assert detector.encoder.batches == [4], "the whole image and three crops in one forward"


def test_directions_off_scores_the_whole_image_only(vocab):
    detector = colour_detector(vocab)
    detector.spec = DetectorSpec(arch="colour", threshold=0.0, top_k=3, directions=False)
    assert {d.direction for d in detector.detect(scene("left"))} == {None}
    assert detector.encoder.batches == [1]


@pytest.mark.parametrize("side", ["left", "right"])
def test_tiny_clip_mechanics_on_a_photo_pasted_to_one_side(app, side):
    # Random weights cannot say where a motorcycle is (direction quality needs real weights); the mechanics can be
    # checked: the real detector scores four views of the constructed scene in one forward and names a side.
    detector = app.extensions["guidepost"].pipeline.detector
    canvas = Image.new("RGB", (600, 300), (128, 128, 128))
    canvas.paste(sample_photo("motorcycle_left", (200, 300)), (0 if side == "left" else 400, 0))
    assert detector.preprocess(canvas).shape[0] == 4
    detections = detector.detect(canvas)
    assert detections and all(d.direction in ("left", "ahead", "right") for d in detections)


def test_directions_reach_the_answer_and_client_labels_have_none(client, app, monkeypatch):
    pipeline = app.extensions["guidepost"].pipeline
    monkeypatch.setattr(pipeline, "detector", colour_detector(pipeline.vocabulary))
    monkeypatch.setattr(pipeline, "vlm", FakeVLM())
    photo = io.BytesIO(encode(scene("right"), "PNG"))
    body = client.post("/process", data={"image": (photo, "s.png"), "mode": "quick"}).json
    assert body["directions"]["car"] == "right" and body["result"].startswith("Caution: car on your right.")
    client_sent = client.post("/process", data={"image": (io.BytesIO(encode(scene("left"), "PNG")), "s.png"),
                                                "objects": "car", "mode": "quick"}).json
    assert client_sent["directions"] == {"car": None} and client_sent["result"].startswith("Caution: car ahead.")


@pytest.mark.parametrize("direction, lang, spoken", [
    ("left", "ko", "주의: 왼쪽에 자동차이(가) 있습니다."), ("right", "ko", "주의: 오른쪽에 자동차이(가) 있습니다."),
    ("left", "en", "Caution: car on your left."), ("ahead", "en", "Caution: car ahead."),
])
def test_spoken_warnings_name_the_side_in_both_languages(app, client, monkeypatch, jpeg, direction, lang, spoken):
    pipeline = app.extensions["guidepost"].pipeline
    car = pipeline.vocabulary.get("car")

    class Seen:
        name = "seen"

        def detect(self, image):
            return [Detection("car", 0.9, car, direction)]
    monkeypatch.setattr(pipeline, "detector", Seen())
    body = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "lang": lang, "mode": "quick"}).json
    assert body["result"].startswith(spoken)


def test_a_preset_can_turn_directions_off(make_app, model_cache, tmp_path, jpeg):
    from guidepost.config import PROJECT_ROOT

    tiny = (PROJECT_ROOT / "models" / "tiny.yaml").read_text().replace("  top_k: 5", "  top_k: 5\n  directions: false")
    app = make_app(preset="flat", presets_dir=str(presets_dir(tmp_path / "models", flat=tiny)))
    body = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).json
    assert set(body["directions"].values()) <= {None} and app.test_client().get("/info").json["directions"] is False
