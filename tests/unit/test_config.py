"""Settings: defaults, GUIDEPOST_* environment, overrides, and errors that say how to fix them."""
from __future__ import annotations

import pytest

from guidepost import ConfigError, create_app
from guidepost.config import load_settings
from tests.helpers import presets_dir


def test_defaults():
    settings = load_settings()
    assert settings.preset == "default" and settings.max_image_mb == 20 and settings.api_key_set == frozenset()


def test_environment_then_overrides(monkeypatch):
    monkeypatch.setenv("GUIDEPOST_PRESET", "tiny")
    monkeypatch.setenv("GUIDEPOST_MAX_IMAGE_MB", "5")
    assert load_settings().preset == "tiny"
    settings = load_settings({"MAX_IMAGE_MB": 2})
    assert settings.preset == "tiny" and settings.max_image_mb == 2


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("GUIDEPOST_MAX_IMAGE_MB", "lots")
    with pytest.raises(ConfigError, match="GUIDEPOST_MAX_IMAGE_MB='lots'"):
        load_settings()


@pytest.mark.parametrize("name,value,fragment", [
    ("GUIDEPOST_DEVICE", "tpu", "use auto, cpu, cuda"),
    ("GUIDEPOST_DTYPE", "float8", "GUIDEPOST_DTYPE"),
    ("GUIDEPOST_WORKERS", "0", "GUIDEPOST_WORKERS"),
    ("GUIDEPOST_BACKEND", "tensorflow", "GUIDEPOST_BACKEND"),
    ("GUIDEPOST_OPENVINO_WEIGHTS", "int2", "GUIDEPOST_OPENVINO_WEIGHTS"),
    ("GUIDEPOST_OPENVINO_HINT", "fastest", "GUIDEPOST_OPENVINO_HINT"),
    ("GUIDEPOST_STATIC_CACHE", "maybe", "GUIDEPOST_STATIC_CACHE"),
])
def test_out_of_range_values(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=fragment):
        load_settings()


def test_misspelt_variable_suggests_the_right_one(monkeypatch):
    monkeypatch.setenv("GUIDEPOST_PRSET", "tiny")
    with pytest.raises(ConfigError, match="did you mean GUIDEPOST_PRESET"):
        load_settings()


def test_api_keys_are_split():
    assert load_settings({"api_keys": " a, b ,,"}).api_key_set == {"a", "b"}


def test_unknown_preset_lists_the_known_ones(model_cache):
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*tiny"):
        create_app({"preset": "nope", "model_cache": str(model_cache), "load": "eager"})


def test_invalid_preset_file_names_the_field(tmp_path, model_cache):
    presets_dir(tmp_path, broken="detector: {arch: x, threshold: 7}\nvlm: {id: y}\n")
    with pytest.raises(ConfigError, match="detector.threshold"):
        create_app({"preset": "broken", "presets_dir": str(tmp_path), "model_cache": str(model_cache)})


def test_generate_kwargs_cannot_take_what_the_server_sets_per_request(tmp_path, model_cache):
    presets_dir(tmp_path, greedy="detector: {arch: x}\nvlm: {id: y, generate_kwargs: {max_new_tokens: 9, top_k: 1}}\n")
    with pytest.raises(ConfigError, match="vlm.generate_kwargs.*max_new_tokens cannot be set here.*vlm.max_new_tokens"):
        create_app({"preset": "greedy", "presets_dir": str(tmp_path), "model_cache": str(model_cache)})


def test_bad_openvino_device_fails_at_start_up(model_cache):
    with pytest.raises(ConfigError, match="use CPU, GPU, GPU.N, NPU or AUTO"):
        create_app({"preset": "tiny", "model_cache": str(model_cache), "backend": "openvino",
                    "openvino_device": "TPU", "load": "eager"})


def test_the_environment_turns_batching_on_but_not_beside_compiled_decoding(model_cache, monkeypatch):
    monkeypatch.setenv("GUIDEPOST_BATCH_MAX_SIZE", "8")
    monkeypatch.setenv("GUIDEPOST_BATCH_WINDOW_MS", "20")
    batch = create_app({"preset": "tiny", "model_cache": str(model_cache)}).extensions["guidepost"].preset.vlm.batch
    assert (batch.max_size, batch.window_ms) == (8, 20.0)
    monkeypatch.setenv("GUIDEPOST_STATIC_CACHE", "on")
    with pytest.raises(ConfigError, match="GUIDEPOST_BATCH_.*static_cache and vlm.batch.max_size > 1 do not combine"):
        create_app({"preset": "tiny", "model_cache": str(model_cache)})


def test_readme_documents_every_setting():
    from guidepost.config import PROJECT_ROOT, Settings
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [f"GUIDEPOST_{name.upper()}" for name in Settings.model_fields if f"`GUIDEPOST_{name.upper()}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_admission_bounds_must_leave_a_thread_to_answer(monkeypatch):
    # With as many requests taken in as threads, the next would wait in gunicorn's queue instead of being answered.
    monkeypatch.setenv("GUIDEPOST_THREADS", "4")
    monkeypatch.setenv("GUIDEPOST_MAX_QUEUE", "4")
    with pytest.raises(ConfigError, match="GUIDEPOST_MAX_QUEUE=4 .* must be less than GUIDEPOST_THREADS=4"):
        load_settings()
    assert load_settings({"max_queue": 3, "max_in_flight": 2}).max_queue == 3
    with pytest.raises(ConfigError, match="GUIDEPOST_MAX_IN_FLIGHT=3 must be at most GUIDEPOST_MAX_QUEUE=2"):
        load_settings({"max_queue": 2, "max_in_flight": 3})
    assert load_settings({"max_queue": 0, "max_in_flight": 0}).max_in_flight == 0, "0 turns the bounds off"