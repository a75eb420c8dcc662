"""The torch backend: open_clip and transformers on the preset's device (auto: the GPU when there is one)."""
from __future__ import annotations

import torch

from ..detector.clip import load_torch_detector
from ..devices import resolve_device, resolve_dtype
from ..vlm.torch_vlm import TorchVLM
from .base import Backend


class TorchBackend(Backend):
    """Both models in torch, in the preset's dtype (auto: bfloat16 on a GPU, float32 on the CPU)."""

    name = "torch"

    def __init__(self, deployment):
        super().__init__(deployment)
        self.device = resolve_device(deployment.device)
        self.dtype = resolve_dtype(deployment.dtype, self.device)

    def load_detector(self, spec, source, vocabulary):
        """open_clip's model and transform, with the vocabulary's text embeddings."""
        return load_torch_detector(spec, source, vocabulary, device=self.device, dtype=self.dtype,
                                   cache_dir=self.cache)

    def load_vlm(self, spec, source):
        """AutoModelForImageTextToText and AutoProcessor through from_pretrained."""
        return TorchVLM.load(spec, source, device=self.device, dtype=self.dtype, cache_dir=self.cache,
                             adapter=self.deployment.adapter)

    def describe(self) -> dict:
        """Device, dtype, torch threads and the adapter."""
        return {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "torch_threads": torch.get_num_threads(), "openvino": None, "adapter": self.adapter_info()}
