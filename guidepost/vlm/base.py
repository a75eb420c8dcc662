"""The backend-neutral VLM: preprocess → forward → postprocess, one generation at a time, a deadline and a stop hook."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList

from ..presets import VLMSpec


class GenerationTimeout(RuntimeError):
    """The model stayed busy with other requests until the deadline."""


class StopWhen(StoppingCriteria):
    """Stops a generation at a deadline (time.monotonic) or as soon as should_stop() says so, checked every token."""

    def __init__(self, deadline: float, should_stop: Callable[[], bool] | None = None):
        self.deadline = deadline
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        stop = time.monotonic() >= self.deadline or (self.should_stop is not None and self.should_stop())
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class VLM:
    """A transformers-compatible VLM with its processor and chat template; subclasses say where tensors go."""

    def __init__(self, model, processor, spec: VLMSpec, name: str):
        self.model = model
        self.processor = processor
        self.spec = spec
        self.name = name
        # generate() mutates caches: one generation at a time. The fast tokenizer refuses concurrent use
        # ("Already borrowed"), so preprocessing and decoding take a lock of their own and can overlap a generation.
        self._model_lock = threading.Lock()
        self._processor_lock = threading.Lock()

    def place(self, inputs):
        """Move the processor's tensors to where the model runs (identity unless a subclass says otherwise)."""
        return inputs

    def preprocess(self, images: list[Image.Image], prompt: str):
        """Images (in order) and the prompt → model inputs through the model's own chat template and processor."""
        content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        with self._processor_lock:
            inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                        return_dict=True, return_tensors="pt")
        return self.place(inputs)

    @torch.inference_mode()
    def forward(self, inputs, *, max_new_tokens: int, stopping: StopWhen) -> torch.Tensor:
        """Greedy generation; the new token ids only."""
        kwargs = {"do_sample": False, **self.spec.generate_kwargs}
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens,
                                     stopping_criteria=StoppingCriteriaList([stopping]), **kwargs)
        return output[0, inputs["input_ids"].shape[1]:]

    def postprocess(self, new_tokens: torch.Tensor) -> str:
        """Token ids → text, special tokens dropped."""
        with self._processor_lock:
            return self.processor.decode(new_tokens, skip_special_tokens=True)

    def generate(self, inputs, *, deadline: float, max_new_tokens: int | None = None,
                 should_stop: Callable[[], bool] | None = None) -> str:
        """The answer to preprocessed inputs, waiting for the model and generating until deadline (time.monotonic).

        GenerationTimeout if the model stays busy until then; a generation still running then is cut short and
        returns what it has.
        """
        if not self._model_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise GenerationTimeout("the VLM stayed busy until the deadline")
        try:
            if time.monotonic() >= deadline:
                raise GenerationTimeout("no time was left to generate")
            tokens = self.forward(inputs, max_new_tokens=max_new_tokens or self.spec.max_new_tokens,
                                  stopping=StopWhen(deadline, should_stop))
        finally:
            self._model_lock.release()
        return self.postprocess(tokens)
