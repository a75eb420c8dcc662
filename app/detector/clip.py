"""open_clip zero-shot detector: vocabulary text embeddings cached on disk, one image forward per request."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from ..hazards import Detection, Vocabulary
from ..ir_cache import files_fingerprint
from ..presets import DetectorSpec

log = logging.getLogger(__name__)

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}


class TorchClipEncoder:
    """open_clip's two towers in torch; both return float32 features on the CPU."""

    def __init__(self, model, device: torch.device, dtype: torch.dtype):
        self.model, self.device, self.dtype = model, device, dtype
        self.identity = "torch"

    @torch.inference_mode()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] float32 pixels → [N, dim] image features (not normalised)."""
        return self.model.encode_image(pixels.to(self.device, self.dtype)).float().cpu()

    @torch.inference_mode()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, context] token ids → [N, dim] text features (not normalised)."""
        return self.model.encode_text(tokens.to(self.device)).float().cpu()


class ClipDetector:
    """Scores an image against every vocabulary label; returns the top labels above a threshold."""

    def __init__(self, encoder, preprocess, text_features: torch.Tensor, labels: list[str], spec: DetectorSpec,
                 logit_scale: float, name: str):
        self.encoder = encoder  # TorchClipEncoder or OpenVINOClipEncoder: same interface, same outputs
        self.preprocess = preprocess
        self.text_features = text_features  # [labels, dim], L2-normalised, float32, CPU
        self.labels = labels
        self.spec = spec
        self.logit_scale = logit_scale
        self.name = name

    @classmethod
    def load(cls, spec: DetectorSpec, model_ref: str, vocabulary: Vocabulary, *, device: torch.device,
             dtype: torch.dtype, cache_dir: Path) -> "ClipDetector":
        """Build the open_clip model in torch and the vocabulary embeddings (from the disk cache when present)."""
        model, preprocess = create_open_clip(spec, model_ref, device=device, dtype=dtype, cache_dir=cache_dir)
        return cls.with_vocabulary(TorchClipEncoder(model, device, dtype), preprocess, spec, model_ref, vocabulary,
                                   logit_scale=model.logit_scale.detach().exp().item(), cache_dir=cache_dir)

    @classmethod
    def with_vocabulary(cls, encoder, preprocess, spec: DetectorSpec, model_ref: str, vocabulary: Vocabulary, *,
                        logit_scale: float, cache_dir: Path) -> "ClipDetector":
        """A detector over encoder, with the vocabulary embedded once (or read from the embedding cache)."""
        labels = [entry.label for entry in vocabulary.labels]
        key = _embedding_key(model_ref, spec, vocabulary, encoder.identity)
        cache_file = cache_dir / "embeddings" / f"clip-{key}.pt"
        text_features = _load_cached(cache_file, labels)
        if text_features is None:
            log.info("computing CLIP text embeddings for %d labels x %d templates", len(labels), len(spec.templates))
            text_features = _encode_vocabulary(encoder, open_clip.get_tokenizer(model_ref), vocabulary, spec.templates)
            _save_cached(cache_file, labels, text_features)
        return cls(encoder, preprocess, text_features, labels, spec, logit_scale, name=spec.arch)

    def image_features(self, image: Image.Image) -> torch.Tensor:
        """L2-normalised image embedding, float32, shape [1, dim]."""
        return F.normalize(self.encoder.encode_image(self.preprocess(image).unsqueeze(0)), dim=-1)

    def detect(self, image: Image.Image) -> list[Detection]:
        """Top-k labels whose softmax score over the vocabulary reaches the threshold, best first."""
        probs = (self.logit_scale * self.image_features(image) @ self.text_features.T).softmax(dim=-1)[0]
        scores, indices = probs.topk(min(self.spec.top_k, len(self.labels)))
        return [Detection(self.labels[i], round(s, 4))
                for s, i in zip(scores.tolist(), indices.tolist()) if s >= self.spec.threshold]


def create_open_clip(spec: DetectorSpec, model_ref: str, *, device: torch.device, dtype: torch.dtype,
                     cache_dir: Path):
    """The open_clip model (eval mode) and its preprocessing, weights from the preset."""
    # squash keeps the whole frame: the default centre crop would cut hazards at the edges of a 4:3 photo.
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_ref, pretrained=spec.pretrained, device=device, precision=_PRECISION[dtype],
        cache_dir=str(cache_dir / "open_clip"), image_resize_mode="squash")
    return model.eval(), preprocess


def _encode_vocabulary(encoder, tokenizer, vocabulary: Vocabulary, templates) -> torch.Tensor:
    # Prompt ensembling: average the normalised embeddings of each label's phrase in every template.
    features = []
    for entry in vocabulary.labels:
        emb = F.normalize(encoder.encode_text(tokenizer([t.format(entry.clip) for t in templates])), dim=-1).mean(dim=0)
        features.append(F.normalize(emb, dim=-1))
    return torch.stack(features)


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


def _save_cached(path: Path, labels: list[str], features: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"labels": labels, "features": features}, tmp)
    os.replace(tmp, path)  # atomic: a concurrent worker reads the old file or the new, never half
