"""The default preset's model family (SmolVLM = Idefics3) through the real registry, with tiny weights."""
from __future__ import annotations

import io

import pytest
import yaml

from app import ConfigError, create_app
from app.config import PROJECT_ROOT
from tests.helpers import presets_dir


def test_smolvlm_family_with_the_default_presets_settings(model_cache, tmp_path, jpeg):
    default = yaml.safe_load((PROJECT_ROOT / "models" / "default.yaml").read_text())
    # Same processor and generation settings as the default preset; only the weights are tiny and local.
    default["detector"] = {"source": "tiny", "arch": "tiny-clip"}
    default["vlm"].update(source="tiny", id="tiny-idefics3")
    default["device"] = "cpu"
    presets = presets_dir(tmp_path / "models", smol=yaml.safe_dump(default))

    app = create_app({"preset": "smol", "presets_dir": str(presets), "model_cache": str(model_cache),
                      "load_in_background": False})
    vlm = app.extensions["guidepost"].pipeline.vlm
    assert type(vlm.processor).__name__ == "Idefics3Processor"
    assert vlm.processor.image_processor.do_image_splitting is False, "processor_kwargs reach the processor"

    response = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "car"})
    assert response.status_code == 200, response.json
    assert response.json["danger"] is True and response.json["result"]


def test_unknown_tiny_model_is_a_config_error(tmp_path, model_cache):
    presets = presets_dir(tmp_path / "models",
                          odd="detector: {source: tiny, arch: tiny-clip}\nvlm: {source: tiny, id: tiny-gpt}\n")
    with pytest.raises(ConfigError, match="tiny-gpt.*tiny-llava"):
        create_app({"preset": "odd", "presets_dir": str(presets), "model_cache": str(model_cache)})
