"""transformers VLM wrapper: chat template in, plain generated text out, one generation at a time."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from ..presets import VLMSpec

log = logging.getLogger(__name__)


class GenerationTimeout(RuntimeError):
    """The model stayed busy with other requests for longer than the timeout."""


class TorchVLM:
    """AutoModelForImageTextToText + AutoProcessor for any family with a chat template."""

    def __init__(self, model, processor, spec: VLMSpec, device: torch.device, dtype: torch.dtype, name: str):
        self.model = model
        self.processor = processor
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.name = name
        # generate() mutates caches and the processor is not documented as thread-safe.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, spec: VLMSpec, model_ref: str, *, device: torch.device, dtype: torch.dtype,
             cache_dir: Path) -> "TorchVLM":
        """Load processor and weights through from_pretrained (a hub id or a local folder)."""
        hub = {"revision": spec.revision, "cache_dir": str(cache_dir / "hf")}
        processor = AutoProcessor.from_pretrained(model_ref, **hub, **spec.processor_kwargs)
        model = AutoModelForImageTextToText.from_pretrained(model_ref, dtype=dtype, **hub)
        model.to(device).eval()
        return cls(model, processor, spec, device, dtype, name=spec.id)

    def generate(self, images: list[Image.Image], prompt: str, *, timeout_s: float,
                 max_new_tokens: int | None = None) -> str:
        """Greedy answer about the images (in order) within timeout_s (waiting for the model included); GenerationTimeout if it stays busy."""
        deadline = time.monotonic() + timeout_s
        if not self._lock.acquire(timeout=timeout_s):
            raise GenerationTimeout(f"the VLM stayed busy for {timeout_s:g} s")
        try:
            remaining = deadline - time.monotonic()
            if remaining < 0.05 * timeout_s:
                raise GenerationTimeout(f"no time left to generate within {timeout_s:g} s")
            return self._generate(images, prompt, remaining, max_new_tokens or self.spec.max_new_tokens)
        finally:
            self._lock.release()

    @torch.inference_mode()
    def _generate(self, images: list[Image.Image], prompt: str, timeout_s: float, max_new_tokens: int) -> str:
        content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")
        # Casts every floating input (pixel_values, DeepSeek-VL's high_res_pixel_values...) and no token ids.
        inputs = inputs.to(self.device, dtype=self.dtype)
        kwargs = {"do_sample": False, **self.spec.generate_kwargs}
        # max_time bounds a generation that started: transformers stops and returns what it has.
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, max_time=timeout_s, **kwargs)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        return self.processor.decode(new_tokens, skip_special_tokens=True)
