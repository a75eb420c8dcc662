"""The open_clip detector on OpenVINO: both towers converted once to IR, one infer request per thread."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2

from ..hazards import Vocabulary
from ..ir_cache import INT4_GROUP_SIZE, compiling, ensure_exported, export_identity, ir_folder
from ..presets import DetectorSpec, OpenVINOSpec
from .clip import ClipDetector, build_detector, create_open_clip

log = logging.getLogger(__name__)

IMAGE_IR, TEXT_IR, META = "openvino_image_model.xml", "openvino_text_model.xml", "clip.json"


class _TextTower(torch.nn.Module):
    """encode_text as a module, so the text tower converts on its own."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        return self.model.encode_text(tokens)


def export_clip(spec: DetectorSpec, model_ref: str, weights: str, cache_dir: Path) -> tuple[Path, bool]:
    """Convert the open_clip towers to IR under model_cache/openvino/ once; returns (folder, exported_now)."""
    folder = ir_folder(cache_dir, f"clip-{spec.arch}", spec.pretrained, weights)
    identity = export_identity(model_ref, spec.pretrained, weights)
    return ensure_exported(folder, identity, lambda target: _export(spec, model_ref, weights, cache_dir, target),
                           f"CLIP {spec.arch} ({weights})")


def _export(spec: DetectorSpec, model_ref: str, weights: str, cache_dir: Path, target: Path) -> None:
    import openvino as ov

    model, _ = create_open_clip(spec, model_ref, device=torch.device("cpu"), dtype=torch.float32,
                                cache_dir=cache_dir)
    side = model.visual.preprocess_cfg["size"]
    height, width = side if isinstance(side, (tuple, list)) else (side, side)
    context = model.context_length
    with torch.inference_mode():
        # A dynamic batch dimension: one image per request, many prompts when the vocabulary is embedded.
        image = ov.convert_model(model.visual, example_input=torch.zeros(1, 3, height, width),
                                 input=[ov.PartialShape([-1, 3, height, width])])
        text = ov.convert_model(_TextTower(model).eval(), example_input=torch.zeros(2, context, dtype=torch.long),
                                input=[(ov.PartialShape([-1, context]), ov.Type.i64)])
    for name, ir in ((IMAGE_IR, image), (TEXT_IR, text)):
        ov.save_model(compress_weights(ir, weights), target / name, compress_to_fp16=weights == "fp16")
    meta = {"preprocess": model.visual.preprocess_cfg, "logit_scale": model.logit_scale.detach().exp().item()}
    (target / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def compress_weights(ir, weights: str):
    """nncf weight compression for int8/int4; fp32 and fp16 pass through (fp16 is applied when saving)."""
    if weights not in ("int8", "int4"):
        return ir
    import nncf

    if weights == "int8":
        return nncf.compress_weights(ir, mode=nncf.CompressWeightsMode.INT8_ASYM)
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode

    # Group-wise int4 (128, as optimum-intel's default) needs each layer's input size to divide by the group:
    # "adjust" picks a smaller group where it does not (tiny models), instead of failing.
    return nncf.compress_weights(ir, mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=INT4_GROUP_SIZE, ratio=1.0,
                                 advanced_parameters=AdvancedCompressionParameters(
                                     group_size_fallback_mode=GroupSizeFallbackMode.ADJUST))


class OpenVINOClipEncoder:
    """The two compiled towers; each thread gets its own infer request (a shared one fails with 'busy')."""

    def __init__(self, image_model, compile_text: Callable[[], object], identity: str):
        self.image_model = image_model
        # The text tower only embeds the vocabulary, which is usually read from the disk cache: compile it (time
        # and memory in every worker) only when it is needed.
        self._compile_text, self._text_model, self._text_lock = compile_text, None, threading.Lock()
        self.identity = identity
        self._local = threading.local()

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] float32 pixels → [N, dim] image features (not normalised)."""
        return self._infer("image", self.image_model, pixels.numpy())

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """[N, context] token ids → [N, dim] text features."""
        with self._text_lock:
            if self._text_model is None:
                self._text_model = self._compile_text()
        features = self._infer("text", self._text_model, tokens.numpy().astype(np.int64))
        return torch.nn.functional.normalize(features, dim=-1) if normalize else features

    def _infer(self, tower: str, compiled, array: np.ndarray) -> torch.Tensor:
        request = getattr(self._local, tower, None)
        if request is None:
            request = compiled.create_infer_request()
            setattr(self._local, tower, request)
        request.infer({0: array})
        return torch.from_numpy(request.get_output_tensor(0).data.copy()).float()


def load_openvino_detector(spec: DetectorSpec, model_ref: str, vocabulary: Vocabulary, ov_spec: OpenVINOSpec,
                           properties: dict, cache_dir: Path) -> ClipDetector:
    """Export once (or reuse the IR), compile the image tower on ov_spec.device and embed the vocabulary."""
    import openvino as ov

    folder, _ = export_clip(spec, model_ref, ov_spec.weights, cache_dir)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    core = ov.Core()

    def compile_tower(ir: str):
        with compiling(folder):
            return core.compile_model(folder / ir, ov_spec.device, properties)

    transform = image_transform_v2(PreprocessCfg(**meta["preprocess"]), is_train=False)
    encoder = OpenVINOClipEncoder(compile_tower(IMAGE_IR), lambda: compile_tower(TEXT_IR),
                                  identity=f"openvino-{ov_spec.weights}")
    log.info("CLIP %s on OpenVINO %s (%s) from %s", model_ref, ov_spec.device, ov_spec.weights, folder)
    return build_detector(encoder, transform, spec, model_ref, vocabulary, logit_scale=meta["logit_scale"],
                          cache_dir=cache_dir)

