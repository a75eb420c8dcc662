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
from ..presets import DetectorSpec

log = logging.getLogger(__name__)

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}


class ClipDetector:
    """Scores an image against every vocabulary label; returns the top labels above a threshold."""

    def __init__(self, model, preprocess, text_features: torch.Tensor, labels: list[str], spec: DetectorSpec,
                 device: torch.device, dtype: torch.dtype, name: str):
        self.model = model
        self.preprocess = preprocess
        self.text_features = text_features  # [labels, dim], L2-normalised, float32
        self.labels = labels
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.name = name
        self.logit_scale = model.logit_scale.detach().exp().item()

    @classmethod
    def load(cls, spec: DetectorSpec, model_ref: str, vocabulary: Vocabulary, *, device: torch.device,
             dtype: torch.dtype, cache_dir: Path) -> "ClipDetector":
        """Build the open_clip model and the vocabulary embeddings (from the disk cache when present)."""
        # squash keeps the whole frame: the default centre crop would cut hazards at the edges of a 4:3 photo.
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_ref, pretrained=spec.pretrained, device=device, precision=_PRECISION[dtype],
            cache_dir=str(cache_dir / "open_clip"), image_resize_mode="squash")
        model.eval()
        tokenizer = open_clip.get_tokenizer(model_ref)
        labels = [entry.label for entry in vocabulary.labels]
        cache_file = cache_dir / "embeddings" / f"clip-{_embedding_key(model_ref, spec, vocabulary)}.pt"
        text_features = _load_cached(cache_file, labels)
        if text_features is None:
            log.info("computing CLIP text embeddings for %d labels x %d templates", len(labels), len(spec.templates))
            text_features = _encode_vocabulary(model, tokenizer, vocabulary, spec.templates, device)
            _save_cached(cache_file, labels, text_features)
        return cls(model, preprocess, text_features.to(device), labels, spec, device, dtype, name=spec.arch)

    @torch.inference_mode()
    def image_features(self, image: Image.Image) -> torch.Tensor:
        """L2-normalised image embedding, float32, shape [1, dim]."""
        pixels = self.preprocess(image).unsqueeze(0).to(self.device, self.dtype)
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    def detect(self, image: Image.Image) -> list[Detection]:
        """Top-k labels whose softmax score over the vocabulary reaches the threshold, best first."""
        probs = (self.logit_scale * self.image_features(image) @ self.text_features.T).softmax(dim=-1)[0]
        scores, indices = probs.topk(min(self.spec.top_k, len(self.labels)))
        return [Detection(self.labels[i], round(s, 4))
                for s, i in zip(scores.tolist(), indices.tolist()) if s >= self.spec.threshold]


@torch.inference_mode()
def _encode_vocabulary(model, tokenizer, vocabulary: Vocabulary, templates, device) -> torch.Tensor:
    # Prompt ensembling: average the normalised embeddings of each label's phrase in every template.
    features = []
    for entry in vocabulary.labels:
        tokens = tokenizer([t.format(entry.clip) for t in templates]).to(device)
        emb = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(dim=0)
        features.append(F.normalize(emb, dim=-1))
    return torch.stack(features).cpu()


def _embedding_key(model_ref: str, spec: DetectorSpec, vocabulary: Vocabulary) -> str:
    identity = {"model": model_ref, "pretrained": spec.pretrained, "templates": spec.templates,
                "vocabulary": vocabulary.digest, "weights": _weights_fingerprint(model_ref, spec.pretrained)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _weights_fingerprint(model_ref: str, pretrained: str | None) -> list:
    # Local weights can be rebuilt in place (tiny models): key on their size and mtime too.
    paths = [Path(model_ref.removeprefix("local-dir:"))] if model_ref.startswith("local-dir:") else []
    if pretrained and os.path.exists(pretrained):
        paths.append(Path(pretrained))
    stats = []
    for path in paths:
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if f.is_file():
                stats.append([f.name, f.stat().st_size, f.stat().st_mtime_ns])
    return stats


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
