"""Compiled decoding on the torch backend (static KV cache + torch.compile): the plain path's tokens, compiled
before the worker is ready, never recompiled by a request, and a failed compile leaves the plain path serving.

torch.compile's default backend (inductor) spends minutes generating C++ for the tiny models on this 2-core machine,
so these tests compile with the "aot_eager" backend: the same graph capture, static cache and compiled generate()
path, without inductor's code generation (whose numerics are PyTorch's to test). GPU speed lives in bench/.
"""
from __future__ import annotations

import functools
import io
import time

import pytest
import torch._dynamo.utils
import transformers

from guidepost.config import PROJECT_ROOT
from tests.helpers import presets_dir, vlm_answer

TINY = (PROJECT_ROOT / "models" / "tiny.yaml").read_text()
STATIC = "  static_cache: {enabled: true, max_len: 512}\n"


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    smolvlm = TINY.replace("tiny-llava", "tiny-idefics3")
    return presets_dir(tmp_path_factory.mktemp("static") / "models", **{
        "tiny": TINY, "tiny-static": TINY + STATIC, "smolvlm": smolvlm, "smolvlm-static": smolvlm + STATIC,
        # A preset that pins every answer's length (as the benchmarks do) still compiles.
        "tiny-static-pinned": TINY + STATIC + "  generate_kwargs: {min_new_tokens: 8}\n"})


@pytest.fixture(scope="module")
def compile_backend():
    """Compile with aot_eager (see the module docstring) while this module's apps load."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("guidepost.vlm.torch_vlm.CompileConfig",
                      functools.partial(transformers.CompileConfig, backend="aot_eager"))
        yield patch


def graphs() -> int:
    """Graphs torch.compile has produced in this process so far."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def vlm_of(app):
    return app.extensions["guidepost"].pipeline.vlm


@pytest.mark.parametrize("plain, compiled", [("tiny", "tiny-static"), ("smolvlm", "smolvlm-static")])
def test_compiled_decoding_gives_the_plain_tokens(make_app, presets, compile_backend, street_photo, photo,
                                                  plain, compiled):
    plain_vlm = vlm_of(make_app(preset=plain, presets_dir=str(presets)))
    before = graphs()
    app = make_app(preset=compiled, presets_dir=str(presets))
    assert app.extensions["guidepost"].ready
    compiled_vlm = vlm_of(app)
    assert compiled_vlm.model.generation_config.cache_implementation == "static"
    compiled_now = graphs()
    assert compiled_now > before, "the warm-up compiled the decoding step before the worker turned ready"
    # Prompts of different lengths (one image, then two) reuse the one cache shape: nothing is compiled again.
    for images, prompt in (([street_photo], "Describe the scene."), ([photo, street_photo], "Compare them, please.")):
        expected = vlm_answer(plain_vlm, images, prompt)
        assert expected and vlm_answer(compiled_vlm, images, prompt) == expected
    assert graphs() == compiled_now


def test_a_preset_with_its_own_min_new_tokens_compiles(make_app, presets, compile_backend, street_photo):
    vlm = vlm_of(make_app(preset="tiny-static-pinned", presets_dir=str(presets)))
    assert vlm.model.generation_config.cache_implementation == "static"
    generation = vlm.stream(vlm.preprocess([street_photo], "Describe the scene."), deadline=time.monotonic() + 60)
    for _ in generation:
        pass
    assert generation.new_tokens >= 8, "the preset's min_new_tokens holds for requests"


def test_a_failed_compile_leaves_the_plain_path_serving(make_app, presets, compile_backend, jpeg, caplog,
                                                       monkeypatch):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr("guidepost.vlm.torch_vlm.CompileConfig",
                            functools.partial(transformers.CompileConfig, backend=broken_backend))
    app = make_app(preset="tiny-static", presets_dir=str(presets))
    assert app.extensions["guidepost"].ready
    assert vlm_of(app).model.generation_config.cache_implementation is None
    assert "decodes on the plain path" in caplog.text
    body = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).get_json()
    assert body["fallback"] is False and body["result"]


def test_the_environment_switches_it(make_app, presets, monkeypatch):
    monkeypatch.setenv("GUIDEPOST_STATIC_CACHE", "OFF")
    app = make_app(preset="tiny-static", presets_dir=str(presets))
    assert app.extensions["guidepost"].preset.vlm.static_cache.enabled is False
    assert vlm_of(app).model.generation_config.cache_implementation is None


def test_a_preset_may_not_combine_it_with_batching(tmp_path):
    from guidepost import ConfigError
    from tests.helpers import started_app

    batched = TINY + STATIC + "  batch: {max_size: 4}\n"
    with pytest.raises(ConfigError, match="static_cache and vlm.batch.max_size > 1 do not combine"):
        started_app({"preset": "both", "presets_dir": str(presets_dir(tmp_path / "models", both=batched)),
                     "model_cache": str(tmp_path / "cache"), "load": "eager"})
