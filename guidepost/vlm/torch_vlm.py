"""The VLM in transformers on the preset's device and dtype."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from ..adapters import Adapter, merge_into
from ..presets import VLMSpec
from .base import VLM


class TorchVLM(VLM):
    """AutoModelForImageTextToText + AutoProcessor for any family with a chat template."""

    def __init__(self, model, processor, spec: VLMSpec, name: str, *, device: torch.device, dtype: torch.dtype):
        super().__init__(model, processor, spec, name)
        self.device, self.dtype = device, dtype

    @classmethod
    def load(cls, spec: VLMSpec, model_ref: str, *, device: torch.device, dtype: torch.dtype,
             cache_dir: Path, adapter: Adapter | None = None) -> "TorchVLM":
        """Load processor and weights through from_pretrained (a hub id or a local folder), merging any adapter."""
        hub = {"revision": spec.revision, "cache_dir": str(cache_dir / "hf")}
        processor = AutoProcessor.from_pretrained(model_ref, **hub, **spec.processor_kwargs)
        model = AutoModelForImageTextToText.from_pretrained(model_ref, dtype=dtype, **hub)
        model.to(device)
        if adapter is not None:
            model = merge_into(model, adapter)
        return cls(model.eval(), processor, spec, spec.id, device=device, dtype=dtype)

    def place(self, inputs):
        """Every floating input (pixel_values, DeepSeek-VL's high_res_pixel_values...) in the model dtype, ids as they are."""
        return inputs.to(self.device, dtype=self.dtype)
