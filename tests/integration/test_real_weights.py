"""The default preset with its real weights; skipped unless they are already in model_cache/ (never downloaded)."""
from __future__ import annotations

import io

import pytest
from huggingface_hub import try_to_load_from_cache
from PIL import Image

from guidepost.config import PROJECT_ROOT
from guidepost_tools.photos import sample_photo
from tests.helpers import encode, started_app

pytestmark = pytest.mark.slow

CACHE = PROJECT_ROOT / "model_cache"
WEIGHTS = [("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_pytorch_model.bin", CACHE / "open_clip"),
           ("HuggingFaceTB/SmolVLM-256M-Instruct", "config.json", CACHE / "hf")]


def _cached(repo: str, filename: str, folder) -> bool:
    return isinstance(try_to_load_from_cache(repo, filename, cache_dir=str(folder)), str)


@pytest.fixture(scope="module")
def real_client():
    missing = [repo for repo, name, folder in WEIGHTS if not _cached(repo, name, folder)]
    if missing:
        pytest.skip(f"real weights not in {CACHE}: {missing} (start `make serve` once with network access)")
    app = started_app({"preset": "default", "model_cache": str(CACHE), "load": "eager"})
    return app.test_client()


def post(client, image: Image.Image, **fields):
    return client.post("/process", data={"image": (io.BytesIO(encode(image)), "p.jpg"), **fields})


def test_real_clip_sees_the_cat(real_client):
    body = post(real_client, sample_photo("chelsea")).json
    assert body["objects"][0]["label"] == "cat"
    assert body["danger"] is False and body["prompt"] == "safe"
    assert body["fallback"] is False and 3 <= len(body["result"].split()) <= 40


def test_real_vlm_text_is_used_on_the_danger_path(real_client):
    body = post(real_client, sample_photo("astronaut"), objects="car").json
    assert body["danger"] is True and body["fallback"] is False
    assert "car" in body["result"].lower()
    assert body["result"] != "Caution: car ahead. Stop and check your surroundings.", "the VLM added nothing"
