"""open_clip zero-shot detector: preprocess → forward (one image batch) → postprocess (top labels over the vocabulary)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.zero_shot_classifier import build_zero_shot_classifier
from PIL import Image

from ..files import atomic_write
from ..hazards import Detection, Label, Vocabulary
from ..ir_cache import files_fingerprint
from ..presets import DetectorSpec

log = logging.getLogger(__name__)

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}
# Where a hazard is: the horizontal span of the frame each crop covers (half the width, overlapping).
CROPS = {"left": (0.0, 0.5), "ahead": (0.25, 0.75), "right": (0.5, 1.0)}


class TorchClipEncoder:
    """open_clip's two towers in torch; both return float32 features on the CPU."""

    identity = "torch"

    def __init__(self, model, device: torch.device, dtype: torch.dtype):
        self.model, self.device, self.dtype = model, device, dtype

    @torch.inference_mode()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] float32 pixels → [N, dim] image features (not normalised)."""
        return self.model.encode_image(pixels.to(self.device, self.dtype)).float().cpu()

    @torch.inference_mode()
    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """[N, context] token ids → [N, dim] text features."""
        features = self.model.encode_text(tokens.to(self.device)).float().cpu()
        return F.normalize(features, dim=-1) if normalize else features


class ClipDetector:
    """Scores an image against every vocabulary label; returns the top labels above a threshold."""

    def __init__(self, encoder, transform, text_features: torch.Tensor, entries: list[Label], spec: DetectorSpec,
                 logit_scale: float, name: str):
        self.encoder = encoder  # TorchClipEncoder or OpenVINOClipEncoder: same interface, same outputs
        self.transform = transform
        self.text_features = text_features  # [labels, dim], L2-normalised, float32, CPU
        self.entries = entries
        self.spec = spec
        self.logit_scale = logit_scale
        self.name = name

    @property
    def labels(self) -> list[str]:
        """The vocabulary labels, in the order of the text features."""
        return [entry.label for entry in self.entries]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB image → [views, 3, H, W] float32 pixels: the whole image, then the left, centre and right crops
        when the preset wants directions (one batched forward scores them all)."""
        views = [image]
        if self.spec.directions:
            width, height = image.size
            views += [image.crop((round(a * width), 0, round(b * width), height)) for a, b in CROPS.values()]
        return torch.stack([self.transform(view) for view in views])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels → L2-normalised image embeddings, float32, [views, dim]."""
        return F.normalize(self.encoder.encode_image(pixels), dim=-1)

    def postprocess(self, image_features: torch.Tensor) -> list[Detection]:
        """Top-k labels of the whole image whose softmax score over the vocabulary reaches the threshold; with crops,
        each label's direction is the crop where it scores highest."""
        probs = (self.logit_scale * image_features @ self.text_features.T).softmax(dim=-1)
        scores, indices = probs[0].topk(min(self.spec.top_k, len(self.entries)))
        where = list(CROPS)
        return [Detection(self.entries[i].label, round(s, 4), self.entries[i],
                          where[int(probs[1:, i].argmax())] if len(probs) > 1 else None)
                for s, i in zip(scores.tolist(), indices.tolist()) if s >= self.spec.threshold]

    def detect(self, image: Image.Image) -> list[Detection]:
        """The labels seen in one image, best first."""
        return self.postprocess(self.forward(self.preprocess(image)))


def load_torch_detector(spec: DetectorSpec, model_ref: str, vocabulary: Vocabulary, *, device: torch.device,
                        dtype: torch.dtype, cache_dir: Path) -> ClipDetector:
    """Build the open_clip model in torch and the vocabulary embeddings (from the disk cache when present)."""
    model, transform = create_open_clip(spec, model_ref, device=device, dtype=dtype, cache_dir=cache_dir)
    return build_detector(TorchClipEncoder(model, device, dtype), transform, spec, model_ref, vocabulary,
                          logit_scale=model.logit_scale.detach().exp().item(), cache_dir=cache_dir)


def build_detector(encoder, transform, spec: DetectorSpec, model_ref: str, vocabulary: Vocabulary, *,
                   logit_scale: float, cache_dir: Path) -> ClipDetector:
    """A detector over encoder, with the vocabulary embedded once (or read from the embedding cache)."""
    labels = [entry.label for entry in vocabulary.labels]
    key = _embedding_key(model_ref, spec, vocabulary, encoder.identity)
    cache_file = cache_dir / "embeddings" / f"clip-{key}.pt"
    text_features = _load_cached(cache_file, labels)
    if text_features is None:
        log.info("computing CLIP text embeddings for %d labels x %d templates", len(labels), len(spec.templates))
        text_features = embed_vocabulary(encoder, open_clip.get_tokenizer(model_ref), vocabulary, spec.templates)
        atomic_write(cache_file, lambda path: torch.save({"labels": labels, "features": text_features}, path))
    return ClipDetector(encoder, transform, text_features, list(vocabulary.labels), spec, logit_scale, name=spec.arch)


def embed_vocabulary(encoder, tokenizer, vocabulary: Vocabulary, templates) -> torch.Tensor:
    """[labels, dim] text embeddings: each label's phrase in every template, averaged (prompt ensembling)."""
    weights = build_zero_shot_classifier(encoder, tokenizer, [entry.clip for entry in vocabulary.labels],
                                         list(templates), num_classes_per_batch=16)
    return weights.T.contiguous()


def create_open_clip(spec: DetectorSpec, model_ref: str, *, device: torch.device, dtype: torch.dtype,
                     cache_dir: Path):
    """The open_clip model (eval mode) and its preprocessing, weights from the preset."""
    # squash keeps the whole frame: the default centre crop would cut hazards at the edges of a 4:3 photo.
    model, _, transform = open_clip.create_model_and_transforms(
        model_ref, pretrained=spec.pretrained, device=device, precision=_PRECISION[dtype],
        cache_dir=str(cache_dir / "open_clip"), image_resize_mode="squash")
    return model.eval(), transform


def _embedding_key(model_ref: str, spec: DetectorSpec, vocabulary: Vocabulary, encoder: str) -> str:
    identity = {"model": model_ref, "pretrained": spec.pretrained, "templates": spec.templates,
                "vocabulary": vocabulary.digest, "weights": _weights_fingerprint(model_ref, spec.pretrained),
                "encoder": encoder}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _weights_fingerprint(model_ref: str, pretrained: str | None) -> list:
    # Local weights can be rebuilt in place (tiny models): key on their size and mtime too.
    paths = [Path(model_ref.removeprefix("local-dir:"))] if model_ref.startswith("local-dir:") else []
    if pretrained and os.path.exists(pretrained):
        paths.append(Path(pretrained))
    return files_fingerprint(*paths)


def _load_cached(path: Path, labels: list[str]) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data["labels"] == labels:
            log.info("loaded CLIP text embeddings from %s", path)
            return data["features"]
    except Exception as exc:  # a corrupt cache file is recomputed, never fatal
        log.warning("ignoring unreadable embedding cache %s: %s", path, exc)
    return None
