"""The OpenVINO backend on the tiny models: parity with torch, export once, weight formats, threads, errors."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import openvino as ov
import pytest
import torch.nn.functional as F

from guidepost import ModelLoadError
from guidepost.config import PROJECT_ROOT
from guidepost.vlm.openvino_families import LIFTED_CAPS
from tests.helpers import presets_dir, vlm_answer

TINY = (PROJECT_ROOT / "models" / "tiny.yaml").read_text()
TINY_SMOLVLM = TINY.replace("tiny-llava", "tiny-idefics3")  # the default preset's family (Idefics3), tiny
# On a CPU with AVX-512 BF16 OpenVINO computes in bf16 and keeps the KV cache in u8 by default, both of which
# drift logits; f32 for both makes greedy tokens comparable with torch float32.
EXACT = "\nopenvino: {weights: fp32, config: {INFERENCE_PRECISION_HINT: f32, KV_CACHE_PRECISION: f32}}\n"


@pytest.fixture(scope="session")
def ov_presets(tmp_path_factory):
    """The tiny preset and a tiny SmolVLM on OpenVINO (and in torch), and a family optimum-intel cannot export."""
    return presets_dir(tmp_path_factory.mktemp("ov") / "models", **{
        "tiny": TINY,
        "tiny-ov": TINY.replace("backend: torch", "backend: openvino") + EXACT,
        "tiny-smolvlm": TINY_SMOLVLM,
        "tiny-smolvlm-ov": TINY_SMOLVLM.replace("backend: torch", "backend: openvino") + EXACT,
        "tiny-deepseek-ov": TINY.replace("backend: torch", "backend: openvino").replace(
            "tiny-llava", "tiny-deepseek-vl-hybrid"),
    })


@pytest.fixture(scope="session")
def ov_app(make_app, ov_presets):
    # No admission bound: the concurrency test must reach the compiled models from many threads at once.
    return make_app(preset="tiny-ov", presets_dir=str(ov_presets), max_queue=0, max_in_flight=0)


def registry(app):
    return app.extensions["guidepost"]


@pytest.fixture(scope="session")
def smolvlm_apps(make_app, ov_presets):
    """A tiny SmolVLM (Idefics3) in torch and on OpenVINO: exported past optimum-intel's transformers cap."""
    return (make_app(preset="tiny-smolvlm", presets_dir=str(ov_presets)),
            make_app(preset="tiny-smolvlm-ov", presets_dir=str(ov_presets)))


def test_greedy_tokens_match_torch(app, ov_app, street_photo, photo):
    _assert_same_answers(app, ov_app, street_photo, photo)


def test_smolvlm_greedy_tokens_match_torch(smolvlm_apps, street_photo, photo):
    # transformers 5.5 in torch against the IR fed 5.5's vision position ids (openvino_families): one and two images.
    _assert_same_answers(*smolvlm_apps, street_photo, photo)


def _assert_same_answers(torch_app, ov_app, street_photo, photo):
    torch_vlm, ov_vlm = registry(torch_app).pipeline.vlm, registry(ov_app).pipeline.vlm
    assert type(torch_vlm).__name__ == "TorchVLM" and type(ov_vlm).__name__ == "OpenVINOVLM"
    for images, prompt in (([street_photo], "Describe the scene."), ([photo, street_photo], "Compare them.")):
        expected = vlm_answer(torch_vlm, images, prompt)
        assert expected and vlm_answer(ov_vlm, images, prompt) == expected


def test_clip_embeddings_match_torch(app, ov_app, street_photo, photo):
    torch_det, ov_det = registry(app).pipeline.detector, registry(ov_app).pipeline.detector
    assert type(ov_det.encoder).__name__ == "OpenVINOClipEncoder"
    for image in (street_photo, photo):
        # The whole image and its three direction crops, in one batched forward on each backend.
        cosine = F.cosine_similarity(*(det.forward(det.preprocess(image)) for det in (torch_det, ov_det)))
        assert cosine.shape == (4,) and cosine.min().item() >= 0.999
    # Every label's ensembled text embedding, computed through the OpenVINO text tower.
    assert F.cosine_similarity(torch_det.text_features, ov_det.text_features).min().item() >= 0.999
    assert [d.label for d in ov_det.detect(street_photo)] == [d.label for d in torch_det.detect(street_photo)]


def test_process_on_openvino_reports_the_backend(ov_app, jpeg):
    client = ov_app.test_client()
    body = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).get_json()
    assert body["model"]["backend"] == "openvino" and body["fallback"] is False and body["result"]
    info = client.get("/info").get_json()
    assert info["openvino"]["weights"] == "fp32" and info["openvino"]["device"] == "CPU"
    # The preset leaves threads at 0, so the worker's torch share (GUIDEPOST_TORCH_THREADS) is what runs.
    assert info["openvino"]["threads"] == registry(ov_app).settings.torch_threads
    assert info["versions"]["openvino"] and info["versions"]["optimum-intel"]


def test_threads_share_the_compiled_models(ov_app, jpeg, street_photo):
    # One compiled model used from many threads at once fails with "Infer Request is busy" unless guarded.
    detector = registry(ov_app).pipeline.detector
    expected = detector.detect(street_photo)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: detector.detect(street_photo), range(64)))
    assert all(result == expected for result in results)

    def post(_):
        response = ov_app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")})
        return response.status_code, response.get_json()["fallback"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(post, range(16))) == {(200, False)}


def test_restart_loads_the_ir_and_compiled_models_without_exporting(ov_app, make_app, ov_presets, monkeypatch):
    import optimum.exporters.openvino as optimum_export

    def must_not_export(*args, **kwargs):
        raise AssertionError("exported again despite the cached IR")
    monkeypatch.setattr(optimum_export, "main_export", must_not_export)
    monkeypatch.setattr(ov, "convert_model", must_not_export)
    compiled = registry(ov_app).deployment.model_cache / "openvino" / "compiled"
    blobs = {blob.name: blob.stat().st_mtime_ns for blob in compiled.glob("*.blob")}
    assert blobs, "the first start left its compiled models in OpenVINO's cache"
    restarted = registry(make_app(preset="tiny-ov", presets_dir=str(ov_presets)))
    assert restarted.ready
    assert {blob.name: blob.stat().st_mtime_ns for blob in compiled.glob("*.blob")} == blobs, \
        "the restart compiled again instead of importing the compiled models"
    # The vocabulary embeddings came from the disk cache, so the CLIP text tower was never compiled.
    assert restarted.pipeline.detector.encoder._text_model is None


def _constant_types(folder) -> set[str]:
    model = ov.Core().read_model(next(folder.glob("openvino_language_model.xml")))
    return {op.get_output_element_type(0).get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"}


@pytest.mark.parametrize("preset, vlm", [("tiny", "tiny-llava"), ("tiny-smolvlm", "tiny-idefics3")])
@pytest.mark.parametrize("weights, stored", [("int8", "u8"), ("int4", "u4")])
def test_compressed_weights_load_and_answer(make_app, model_cache, ov_presets, jpeg, weights, stored, preset, vlm):
    app = make_app(preset=preset, presets_dir=str(ov_presets), backend="openvino", openvino_weights=weights)
    body = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).get_json()
    assert body["model"]["backend"] == "openvino" and body["fallback"] is False
    assert stored in _constant_types(model_cache / "openvino" / f"{vlm}-main-{weights}")


def test_export_command_then_start_without_exporting(app, make_app, model_cache, monkeypatch):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["export-openvino", "--preset", "tiny", "--weights", "fp16"])
    assert result.exit_code == 0, result.output
    assert "detector:" in result.output and "VLM:" in result.output
    for folder in ("clip-tiny-clip-none-fp16", "tiny-llava-main-fp16"):
        assert list((model_cache / "openvino" / folder).glob("*.xml"))
    assert "already exported" in runner.invoke(args=["export-openvino", "--preset", "tiny", "--weights", "fp16"]).output

    import optimum.exporters.openvino as optimum_export
    monkeypatch.setattr(optimum_export, "main_export", lambda *a, **k: pytest.fail("exported at start-up"))
    assert registry(make_app(backend="openvino", openvino_weights="fp16")).ready


def test_unsupported_family_names_it_and_the_supported_ones(make_app, ov_presets):
    with pytest.raises(ModelLoadError) as error:
        make_app(preset="tiny-deepseek-ov", presets_dir=str(ov_presets))
    message = str(error.value)
    assert "'deepseek_vl_hybrid'" in message and "Families it exports here:" in message
    assert "llava" in message and "idefics3" in message  # idefics3: optimum-intel's cap lifted (openvino_families)
    assert "GUIDEPOST_BACKEND=torch" in message


def test_the_lifted_cap_is_put_back_after_an_export(smolvlm_apps):
    from optimum.exporters.openvino.model_configs import Idefics3OpenVINOConfig

    # Only this project's export lifts it: optimum's own judgement stays in place for everything else.
    assert Idefics3OpenVINOConfig.MAX_TRANSFORMERS_VERSION == LIFTED_CAPS["idefics3"].cap


def test_export_command_refuses_an_unsupported_family(ov_app):
    result = ov_app.test_cli_runner().invoke(args=["export-openvino", "--preset", "tiny-deepseek-ov", "--weights", "int8"])
    assert result.exit_code != 0 and "'deepseek_vl_hybrid'" in result.output


def test_a_gpu_box_is_told_to_run_the_default_preset_on_torch(monkeypatch, caplog):
    import torch

    from guidepost.backends import create_backend
    from guidepost.config import load_settings
    from guidepost.deployment import resolve_deployment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    backend = create_backend(resolve_deployment(load_settings({"preset": "default"})))
    assert backend.name == "openvino" and "set GUIDEPOST_BACKEND=torch" in caplog.text
