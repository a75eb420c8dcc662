"""The registry: models load once, embeddings are cached on disk, readiness gates traffic."""
from __future__ import annotations

import io
import threading

import pytest

from guidepost import ModelLoadError, loading
from guidepost.config import PROJECT_ROOT
from guidepost.detector import clip as clip_module
from tests.helpers import presets_dir, started_app


def test_text_embeddings_are_cached_and_reused(make_app, model_cache, monkeypatch):
    make_app()  # the first app of the session has already written the cache
    assert list((model_cache / "embeddings").glob("clip-*.pt"))

    def must_not_run(*args, **kwargs):
        raise AssertionError("text embeddings were recomputed despite the cache")
    monkeypatch.setattr(clip_module, "embed_vocabulary", must_not_run)
    app = make_app()
    assert app.extensions["guidepost"].ready


def test_changed_vocabulary_gets_new_embeddings(make_app, model_cache, tmp_path):
    presets = presets_dir(tmp_path / "models", tiny=(PROJECT_ROOT / "models" / "tiny.yaml").read_text(), vocabulary=(
        "labels:\n- {label: car, ko: 자동차, hazard: true, severity: 3, clip: a car}\n"
        "- {label: tree, ko: 나무, hazard: false, severity: 0, clip: a tree}\n"))
    before = set((model_cache / "embeddings").glob("*.pt"))
    detector = make_app(presets_dir=str(presets)).extensions["guidepost"].pipeline.detector
    assert detector.labels == ["car", "tree"] and detector.text_features.shape[0] == 2
    assert len(set((model_cache / "embeddings").glob("*.pt")) - before) == 1


def _offline_preset(tmp_path):
    return presets_dir(tmp_path / "models", remote=(
        "device: cpu\ndetector: {source: tiny, arch: tiny-clip}\nvlm: {id: guidepost-test/not-downloaded}\n"))


def test_missing_weights_fail_with_a_useful_message(model_cache, tmp_path, jpeg):
    app = started_app({"preset": "remote", "presets_dir": str(_offline_preset(tmp_path)),
                      "model_cache": str(model_cache), "load": "background"})
    registry = app.extensions["guidepost"]
    assert registry.wait(60)
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["status"] == "failed"
    assert "guidepost-test/not-downloaded" in ready.json["error"] and "GUIDEPOST_PRESET=tiny" in ready.json["error"]
    response = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200


def test_synchronous_load_failure_raises(model_cache, tmp_path):
    with pytest.raises(ModelLoadError, match="not-downloaded"):
        started_app({"preset": "remote", "presets_dir": str(_offline_preset(tmp_path)),
                    "model_cache": str(model_cache), "load": "eager"})


def test_readyz_is_503_until_models_are_loaded(model_cache, monkeypatch, jpeg):
    gate = threading.Event()
    real_load = loading.load_pipeline

    def gated_load(*args, **kwargs):
        gate.wait(30)
        return real_load(*args, **kwargs)
    monkeypatch.setattr("guidepost.extension.load_pipeline", gated_load)
    app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "background"})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    busy = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")})
    assert busy.status_code == 503 and busy.json["error"]["code"] == "not_ready"
    gate.set()
    assert app.extensions["guidepost"].wait(60)
    assert client.get("/readyz").status_code == 200
    assert client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).status_code == 200


def test_tiny_models_build_once(model_cache):
    from guidepost import tiny
    folder = tiny.ensure_built("tiny-llava", model_cache)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert tiny.ensure_built("tiny-llava", model_cache) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_vlm_broken_at_start_up_still_serves_hazards(model_cache, monkeypatch, jpeg, caplog):
    from guidepost.vlm.base import VLM

    def broken(self, *args, **kwargs):
        raise RuntimeError("driver error")
    monkeypatch.setattr(VLM, "forward", broken)
    with caplog.at_level("WARNING"):
        app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager"})
    assert app.extensions["guidepost"].ready
    assert any("warm-up failed" in r.getMessage() for r in caplog.records)
    body = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "car"}).json
    assert body["fallback"] is True and body["reason"] == "error" and body["danger"] is True


def test_detector_broken_at_start_up_makes_the_worker_unready(model_cache, monkeypatch):
    from guidepost.detector import ClipDetector

    def broken(self, image):
        raise RuntimeError("bad weights")
    monkeypatch.setattr(ClipDetector, "detect", broken)
    with pytest.raises(ModelLoadError, match="bad weights"):
        started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager"})
