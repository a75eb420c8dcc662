"""The VLM in transformers on the preset's device and dtype."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, CompileConfig, StoppingCriteria, StoppingCriteriaList

from ..adapters import Adapter, merge_into
from ..presets import StaticCacheSpec, VLMSpec
from .base import VLM

log = logging.getLogger(__name__)

# Decoding steps the warm-up runs: torch.compile traces on the first, a CUDA graph is recorded on a later one.
_WARM_UP_STEPS = 4


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
        vlm = cls(model.eval(), processor, spec, spec.id, device=device, dtype=dtype)
        if spec.static_cache.enabled:
            vlm.compile_decoding(spec.static_cache)
        return vlm

    def place(self, inputs):
        """Every floating input (pixel_values, DeepSeek-VL's high_res_pixel_values...) in the model dtype, ids as they are."""
        return inputs.to(self.device, dtype=self.dtype)

    def compile_decoding(self, settings: StaticCacheSpec) -> None:
        """Decode with a static KV cache of settings.max_len tokens and a torch.compile'd step, compiled now.

        transformers' generate() compiles the decoding step when the cache is static (prefill stays eager, as its
        shape changes with every prompt) and keeps the cache between calls while it is large enough, so every
        request reuses one shape and one compiled graph. If compiling fails, decoding stays on the plain path.
        """
        config = self.model.generation_config
        compile_config = CompileConfig(mode=settings.compile_mode)
        # transformers compiles only on CUDA/XPU unless told otherwise; the preset asked for it (and the tests
        # check parity on the CPU).
        compile_config._compile_all_devices = True
        config.cache_implementation, config.compile_config = "static", compile_config
        started = time.perf_counter()
        try:
            self._warm_up_static_cache(settings.max_len)
        except Exception as exc:
            config.cache_implementation, config.compile_config = None, None
            log.warning("compiling the VLM's decoding failed, so it decodes on the plain path: %s: %s",
                        type(exc).__name__, exc)
            return
        log.info("VLM decoding compiled (static KV cache of %d tokens, mode %s) in %.1f s", settings.max_len,
                 settings.compile_mode, time.perf_counter() - started)

    @torch.inference_mode()
    def _warm_up_static_cache(self, max_len: int) -> None:
        # Asking for max_len - prompt new tokens makes generate() allocate the cache at its full size; the stop
        # hook ends the warm-up after a few compiled steps (min_new_tokens: an early end-of-text would skip them).
        inputs = self.preprocess([Image.new("RGB", (64, 64), (128, 128, 128))], "Describe the image.")
        prompt = inputs["input_ids"].shape[1]
        if max_len <= prompt + _WARM_UP_STEPS:
            raise ValueError(f"static_cache.max_len {max_len} leaves no room after a {prompt}-token prompt")
        # The warm-up's own min_new_tokens wins over a preset's (which pins answer lengths in benchmarks).
        self.model.generate(**inputs, **{"do_sample": False, **self.spec.generate_kwargs,
                                         "min_new_tokens": _WARM_UP_STEPS + 1},
                            max_new_tokens=max_len + 1 - prompt,
                            stopping_criteria=StoppingCriteriaList([_AfterSteps(_WARM_UP_STEPS)]))


class _AfterSteps(StoppingCriteria):
    """Stops every row after `steps` decoding steps (the warm-up's few compiled steps)."""

    def __init__(self, steps: int):
        self.left = steps

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.left -= 1
        return torch.full((input_ids.shape[0],), self.left < 0, dtype=torch.bool, device=input_ids.device)
