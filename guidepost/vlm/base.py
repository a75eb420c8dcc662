"""The backend-neutral VLM: preprocess → forward → postprocess, one generation at a time, a deadline and a stop hook."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..presets import VLMSpec
from . import GenerationTimeout


class StopWhen(StoppingCriteria):
    """Stops a generation at a deadline (time.monotonic), when should_stop() says so, or on stop(); checked every token."""

    def __init__(self, deadline: float, should_stop: Callable[[], bool] | None = None):
        self.deadline = deadline
        self.should_stop = should_stop
        self.reason: str | None = None  # deadline, cancelled (should_stop) or what stop() was given
        self.stopped = threading.Event()  # set once a reason is known

    def stop(self, reason: str) -> None:
        """Ask the generation to end after the current token."""
        self.reason = self.reason or reason
        self.stopped.set()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        if self.reason is None and time.monotonic() >= self.deadline:
            self.stop("deadline")
        if self.reason is None and self.should_stop is not None and self.should_stop():
            self.stop("cancelled")
        return torch.full((input_ids.shape[0],), self.reason is not None, dtype=torch.bool, device=input_ids.device)


class _TokenQueue(BaseStreamer):
    """generate()'s streamer: hands new token ids to the consumer; decoding happens there, under the processor lock."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first puts the prompt's ids
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(None)


class Generation:
    """A generation running on its own thread: iterate for the text so far, each time it grows (None while
    nothing arrived within poll_s).

    Afterwards: `text`, `prompt_tokens`, `new_tokens` and `stopped_by` (eos, length, deadline, cancelled or the
    reason given to stop()). close() ends it within one token and waits for the thread.
    """

    def __init__(self, vlm: "VLM", inputs, *, max_new_tokens: int, stopping: StopWhen, poll_s: float | None):
        self.vlm, self.stopping, self.poll_s, self.max_new_tokens = vlm, stopping, poll_s, max_new_tokens
        self.prompt_tokens = int(inputs["input_ids"].shape[-1])
        self.tokens: list[int] = []
        self.text = ""
        self.stopped_by: str | None = None
        self._stream = _TokenQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(inputs,), name="guidepost-generate", daemon=True)
        self._thread.start()

    @property
    def new_tokens(self) -> int:
        """How many tokens the model generated."""
        return len(self.tokens)

    def _run(self, inputs) -> None:
        started = time.monotonic()
        try:
            self.vlm.forward(inputs, max_new_tokens=self.max_new_tokens, stopping=self.stopping, streamer=self._stream)
        except BaseException as exc:  # handed to the consumer, which decides what a failure means
            self._error = exc
            self._stream.end()
        finally:
            self.vlm._generation_done(time.monotonic() - started)

    def __iter__(self) -> Iterator[str | None]:
        while True:
            try:
                ids = self._stream.queue.get(timeout=self.poll_s)
            except queue.Empty:
                yield None  # nothing new yet: the caller may send a keep-alive
                continue
            if ids is None:
                break
            self.tokens.extend(ids)
            text = self.vlm.postprocess(torch.tensor(self.tokens))
            if text != self.text:
                self.text = text
                yield text
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.stopped_by = self.stopping.reason or ("length" if self.new_tokens >= self.max_new_tokens else "eos")

    def stop(self, reason: str) -> None:
        """End the generation after the current token (the answer is long enough, say)."""
        self.stopping.stop(reason)

    def close(self) -> None:
        """Stop now and wait for the model to be free again."""
        self.stopping.stop("cancelled")
        self._thread.join()


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
        self._state_lock = threading.Lock()
        self._waiting = 0  # requests waiting for the model
        self._busy = False
        self._typical_s: float | None = None  # moving average of a generation's wall time

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
    def forward(self, inputs, *, max_new_tokens: int, stopping: StopWhen, streamer=None) -> torch.Tensor:
        """Greedy generation; the new token ids only."""
        kwargs = {"do_sample": False, **self.spec.generate_kwargs}
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, streamer=streamer,
                                     stopping_criteria=StoppingCriteriaList([stopping]), **kwargs)
        return output[0, inputs["input_ids"].shape[1]:]

    def postprocess(self, new_tokens: torch.Tensor) -> str:
        """Token ids → text, special tokens dropped."""
        with self._processor_lock:
            return self.processor.decode(new_tokens, skip_special_tokens=True)

    def stream(self, inputs, *, deadline: float, max_new_tokens: int | None = None,
               should_stop: Callable[[], bool] | None = None, poll_s: float | None = None) -> Generation:
        """Wait for the model until deadline (time.monotonic), then start generating; GenerationTimeout if it stays
        busy. The generation ends by itself at the deadline, or when should_stop() says so, within one token."""
        with self._state_lock:
            self._waiting += 1
        try:
            acquired = self._model_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            with self._state_lock:
                self._waiting -= 1
        if not acquired:
            raise GenerationTimeout("the VLM stayed busy until the deadline")
        if time.monotonic() >= deadline:
            self._model_lock.release()
            raise GenerationTimeout("no time was left to generate")
        self._busy = True
        try:
            return Generation(self, inputs, max_new_tokens=max_new_tokens or self.spec.max_new_tokens,
                              stopping=StopWhen(deadline, should_stop), poll_s=poll_s)
        except BaseException:
            self._generation_done(None)
            raise

    def generate(self, inputs, *, deadline: float, max_new_tokens: int | None = None,
                 should_stop: Callable[[], bool] | None = None) -> str:
        """The whole answer to preprocessed inputs (stream() consumed)."""
        generation = self.stream(inputs, deadline=deadline, max_new_tokens=max_new_tokens, should_stop=should_stop)
        try:
            for _ in generation:
                pass
        finally:
            generation.close()
        return generation.text

    def expected_wait_s(self) -> float:
        """Roughly how long a request arriving now would wait for the model: the generations ahead of it."""
        with self._state_lock:
            ahead = self._waiting + (1 if self._busy else 0)
        return ahead * (self._typical_s or 0.0)

    def _generation_done(self, seconds: float | None) -> None:
        if seconds is not None:
            self._typical_s = seconds if self._typical_s is None else 0.8 * self._typical_s + 0.2 * seconds
        self._busy = False
        self._model_lock.release()
