"""Each preset's model family through the real registry, with its real settings over tiny local weights."""
from __future__ import annotations

import io

import pytest
import torch
import yaml

from guidepost import ConfigError, create_app
from guidepost.config import PROJECT_ROOT
from tests.helpers import presets_dir, started_app

FAMILIES = [
    pytest.param("default.yaml", "tiny-idefics3", "Idefics3Processor", ("pixel_values",), id="smolvlm"),
    # DeepSeek-VL feeds a second, high-resolution image to its SAM tower.
    pytest.param("deepseek-vl-7b.yaml", "tiny-deepseek-vl-hybrid", "DeepseekVLHybridProcessor",
                 ("pixel_values", "high_res_pixel_values"), id="deepseek-vl"),
    # Qwen2.5-VL flattens the image into patches and places them with the grid shape.
    pytest.param("qwen2.5-vl-3b.yaml", "tiny-qwen2.5-vl", "Qwen2_5_VLProcessor", ("pixel_values", "image_grid_thw"),
                 id="qwen2.5-vl"),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # bfloat16: what a GPU box runs, so every input is cast
@pytest.mark.parametrize("preset_file, tiny_id, processor, image_inputs", FAMILIES)
def test_family_with_its_presets_settings(model_cache, tmp_path, jpeg, monkeypatch, preset_file, tiny_id, processor,
                                          image_inputs, dtype):
    preset = yaml.safe_load((PROJECT_ROOT / "models" / preset_file).read_text())
    # Same processor and generation settings as the shipped preset; only the weights are tiny and local.
    preset["detector"] = {"source": "tiny", "arch": "tiny-clip"}
    preset["vlm"].update(source="tiny", id=tiny_id)
    preset.update(backend="torch", device="cpu", dtype=dtype)  # the default preset itself runs on OpenVINO (below)
    presets = presets_dir(tmp_path / "models", family=yaml.safe_dump(preset))

    app = started_app({"preset": "family", "presets_dir": str(presets), "model_cache": str(model_cache),
                       "load": "eager"})
    vlm = app.extensions["guidepost"].pipeline.vlm
    assert type(vlm.processor).__name__ == processor
    for name, value in preset["vlm"].get("processor_kwargs", {}).items():
        assert getattr(vlm.processor.image_processor, name) == value, "processor_kwargs reach the processor"

    # Records the inputs as generate() receives them: after the processor and TorchVLM's placement.
    seen = {}
    generate = vlm.model.generate

    def recording_generate(**inputs):
        seen.update(inputs)
        return generate(**inputs)

    monkeypatch.setattr(vlm.model, "generate", recording_generate)
    response = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "car"})
    assert response.status_code == 200, response.json
    assert response.json["fallback"] is False and response.json["danger"] is True and response.json["result"]
    assert set(image_inputs) <= seen.keys()
    floating = {name: v.dtype for name, v in seen.items() if torch.is_tensor(v) and v.is_floating_point()}
    assert floating and set(floating.values()) == {getattr(torch, dtype)}, floating


def test_unknown_tiny_model_is_a_config_error(tmp_path, model_cache):
    presets = presets_dir(tmp_path / "models",
                          odd="detector: {source: tiny, arch: tiny-clip}\nvlm: {source: tiny, id: tiny-gpt}\n")
    with pytest.raises(ConfigError, match="tiny-gpt.*tiny-llava"):
        create_app({"preset": "odd", "presets_dir": str(presets), "model_cache": str(model_cache)})


def test_default_preset_runs_on_openvino(model_cache, tmp_path, jpeg):
    # The default preset as shipped (OpenVINO, int8 weights, one 512 px tile) over a tiny SmolVLM and CLIP.
    preset = yaml.safe_load((PROJECT_ROOT / "models" / "default.yaml").read_text())
    assert preset["backend"] == "openvino" and preset["openvino"]["weights"] == "int8"
    preset["detector"] = {"source": "tiny", "arch": "tiny-clip"}
    preset["vlm"].update(source="tiny", id="tiny-idefics3")
    presets = presets_dir(tmp_path / "models", family=yaml.safe_dump(preset))

    app = started_app({"preset": "family", "presets_dir": str(presets), "model_cache": str(model_cache),
                       "load": "eager"})
    vlm = app.extensions["guidepost"].pipeline.vlm
    assert type(vlm).__name__ == "OpenVINOVLM" and vlm.processor.image_processor.do_image_splitting is False
    body = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "car"}).json
    assert body["model"]["backend"] == "openvino" and body["fallback"] is False and body["result"]
    assert (model_cache / "openvino" / "tiny-idefics3-main-int8" / "guidepost-export.json").is_file()
