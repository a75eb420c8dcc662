"""The backend-neutral VLM: one generation thread per model, requests batched, each with its deadline and stop hook.

Request threads call preprocess() (overlapping whatever the model is doing), then stream(), which queues the request
and returns a Generation to iterate. The model's own thread takes the queued requests — one, or up to the preset's
batch size, gathered within its collection window — and generates for them together, one forward per step; each
request leaves the batch as soon as it is done (its deadline, its client gone, its word cap, its token budget) while
the others go on.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..presets import VLMSpec
from . import GenerationTimeout


@dataclass
class Prepared(Mapping):
    """One request's VLM inputs: its images and prompt, and what the processor made of them alone (a read-only
    mapping of those tensors, so `model.generate(**prepared)` and `dict(prepared)` work as on a BatchFeature)."""

    images: list[Image.Image]
    prompt: str
    inputs: object  # the processor's BatchFeature for this request alone, on the model's device
    history: tuple[tuple[str, str], ...] = ()  # earlier (role, text) turns of a chat (the OpenAI-compatible API)

    def __getitem__(self, key):
        return self.inputs[key]

    def __iter__(self):
        return iter(self.inputs.keys())

    def __len__(self) -> int:
        return len(self.inputs.keys())


class StopWhen:
    """When one request's generation must end: its deadline (time.monotonic), should_stop() (its client gone), or
    stop(reason); checked every token."""

    def __init__(self, deadline: float, should_stop: Callable[[], bool] | None = None):
        self.deadline = deadline
        self.should_stop = should_stop
        self.reason: str | None = None  # deadline, cancelled (should_stop) or what stop() was given
        self.stopped = threading.Event()  # set once a reason is known

    def stop(self, reason: str) -> None:
        """Ask the generation to end after the current token."""
        self.reason = self.reason or reason
        self.stopped.set()

    def check(self) -> bool:
        """Whether the generation must end now."""
        if self.reason is None and time.monotonic() >= self.deadline:
            self.stop("deadline")
        if self.reason is None and self.should_stop is not None and self.should_stop():
            self.stop("cancelled")
        return self.reason is not None


class Generation:
    """One request's generation: iterate for the text so far, each time it grows (None while nothing arrived within
    poll_s). Afterwards: `text`, `prompt_tokens`, `new_tokens` and `stopped_by` (eos, length, deadline, cancelled
    or the reason given to stop()). close() ends it within one token."""

    def __init__(self, vlm: "VLM", prepared: Prepared, *, max_new_tokens: int, stopping: StopWhen,
                 poll_s: float | None):
        self.vlm, self.prepared, self.stopping, self.poll_s = vlm, prepared, stopping, poll_s
        self.max_new_tokens = max_new_tokens
        self.prompt_tokens = int(prepared.inputs["input_ids"].shape[-1])
        self.tokens: list[int] = []
        self.text = ""
        self.stopped_by: str | None = None
        self.queue: queue.Queue = queue.Queue()  # token ids from the model's thread; None: done; an exception
        self.state = "queued"  # queued → running → done, or abandoned (its deadline passed while queued)
        self._state_lock = threading.Lock()
        self._ended = threading.Event()
        self._counted = 0  # tokens delivered by the model's thread

    @property
    def new_tokens(self) -> int:
        """How many tokens the model generated for this request."""
        return len(self.tokens)

    def claim(self) -> bool:
        """The model's thread takes this request into a batch, unless it was abandoned."""
        with self._state_lock:
            if self.state != "queued":
                return False
            self.state = "running"
            return True

    def finished_generating(self) -> bool:
        """Whether this request needs no more tokens (checked by the model's thread every step)."""
        return self._ended.is_set() or self.stopping.check() or self._counted >= self.max_new_tokens

    def deliver(self, token: int) -> None:
        """One new token from the model's thread."""
        self._counted += 1
        self.queue.put([token])

    def end(self, error: BaseException | None = None) -> None:
        """No more tokens (the model's thread): the request leaves the batch."""
        if not self._ended.is_set():
            self._ended.set()
            self.queue.put(error)

    def __iter__(self) -> Iterator[str | None]:
        while True:
            try:
                item = self.queue.get(timeout=self._wait_s())
            except queue.Empty:
                if self._abandon_if_late():
                    raise GenerationTimeout("the VLM stayed busy until the deadline") from None
                yield None  # nothing new yet: the caller may send a keep-alive
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            self.tokens.extend(item)
            text = self.vlm.postprocess(torch.tensor(self.tokens))
            if text != self.text:
                self.text = text
                yield text
        self.stopped_by = self.stopping.reason or ("length" if self.new_tokens >= self.max_new_tokens else "eos")

    def _wait_s(self) -> float | None:
        if self.state == "queued":  # wake at the deadline to give up waiting for the model
            left = max(0.0, self.stopping.deadline - time.monotonic())
            return left if self.poll_s is None else min(left, self.poll_s)
        return self.poll_s

    def _abandon_if_late(self) -> bool:
        with self._state_lock:
            if self.state == "queued" and time.monotonic() >= self.stopping.deadline:
                self.state = "abandoned"
                return True
        return False

    def stop(self, reason: str) -> None:
        """End the generation after the current token (the answer is long enough, say)."""
        self.stopping.stop(reason)

    def close(self) -> None:
        """Stop now (the client went away, or the caller is done); the model's thread drops the request."""
        self.stopping.stop("cancelled")
        with self._state_lock:
            if self.state == "queued":
                self.state = "abandoned"


class _Rows(StoppingCriteria):
    """generate()'s stopping criterion for a batch: one verdict per row, from each request's own state."""

    def __init__(self, generations: list[Generation]):
        self.generations = generations

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = []
        for generation in self.generations:
            if generation.finished_generating():
                generation.end()  # leaves now: its consumer does not wait for the rest of the batch
                done.append(True)
            else:
                done.append(False)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _Dispatch(BaseStreamer):
    """generate()'s streamer for a batch: each row's new token to its request, until that request has left."""

    def __init__(self, generations: list[Generation], eos: set[int]):
        self.generations, self.eos, self._prompt_seen = generations, eos, False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first puts the prompts' ids
            self._prompt_seen = True
            return
        for generation, token in zip(self.generations, value.reshape(-1).tolist()):
            if generation._ended.is_set():
                continue  # its row is padding now
            generation.deliver(token)
            if token in self.eos:
                generation.end()

    def end(self) -> None:
        for generation in self.generations:
            generation.end()


class VLM:
    """A transformers-compatible VLM with its processor and chat template; subclasses say where tensors go."""

    def __init__(self, model, processor, spec: VLMSpec, name: str):
        self.model = model
        self.processor = processor
        self.spec = spec
        self.name = name
        self.max_batch = spec.batch.max_size
        self.window_s = spec.batch.window_ms / 1000
        # The fast tokenizer refuses concurrent use ("Already borrowed"): preprocessing and decoding share a lock.
        self._processor_lock = threading.Lock()
        self._queue: queue.Queue[Generation] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._running = 0  # requests in the batch being generated
        self._typical_s: float | None = None  # moving average of a batch's wall time

    def place(self, inputs):
        """Move the processor's tensors to where the model runs (identity unless a subclass says otherwise)."""
        return inputs

    def preprocess(self, images: list[Image.Image], prompt: str, history: tuple[tuple[str, str], ...] = ()
                   ) -> Prepared:
        """Images (in order) and the prompt → model inputs through the model's own chat template and processor;
        history: earlier (role, text) turns of a chat, which come first."""
        with self._processor_lock:
            inputs = self.processor.apply_chat_template([_conversation(images, prompt, history)],
                                                        add_generation_prompt=True, tokenize=True, return_dict=True,
                                                        return_tensors="pt")
        return Prepared(list(images), prompt, self.place(inputs), tuple(history))

    def preprocess_batch(self, batch: list[Prepared]):
        """Several requests as one batch: the processor again, over all of them, prompts padded on the left."""
        with self._processor_lock:
            inputs = self.processor.apply_chat_template(
                [_conversation(p.images, p.prompt, p.history) for p in batch], add_generation_prompt=True,
                tokenize=True, return_dict=True, return_tensors="pt",
                processor_kwargs={"padding": True, "padding_side": "left"})
        return self.place(inputs)

    @torch.inference_mode()
    def forward(self, inputs, *, max_new_tokens: int, stopping: StoppingCriteria, streamer=None) -> torch.Tensor:
        """Greedy generation for a batch (rows stop as `stopping` says); the ids, prompts included."""
        kwargs = {"do_sample": False, **self.spec.generate_kwargs}
        return self.model.generate(**inputs, max_new_tokens=max_new_tokens, streamer=streamer,
                                   stopping_criteria=StoppingCriteriaList([stopping]), **kwargs)

    def postprocess(self, new_tokens: torch.Tensor) -> str:
        """Token ids → text, special tokens dropped."""
        with self._processor_lock:
            return self.processor.decode(new_tokens, skip_special_tokens=True)

    def stream(self, prepared: Prepared, *, deadline: float, max_new_tokens: int | None = None,
               should_stop: Callable[[], bool] | None = None, poll_s: float | None = None) -> Generation:
        """Queue a request for the model; iterating the Generation waits for it (GenerationTimeout if the model stays
        busy until the deadline), then yields its text as it grows. It ends by itself at the deadline, or when
        should_stop() says so, within one token."""
        if time.monotonic() >= deadline:
            raise GenerationTimeout("no time was left to generate")
        generation = Generation(self, prepared, max_new_tokens=max_new_tokens or self.spec.max_new_tokens,
                                stopping=StopWhen(deadline, should_stop), poll_s=poll_s)
        self._ensure_thread()
        self._queue.put(generation)
        return generation

    def generate(self, prepared: Prepared, *, deadline: float, max_new_tokens: int | None = None,
                 should_stop: Callable[[], bool] | None = None) -> str:
        """The whole answer to one prepared request (stream() consumed)."""
        generation = self.stream(prepared, deadline=deadline, max_new_tokens=max_new_tokens, should_stop=should_stop)
        try:
            for _ in generation:
                pass
        finally:
            generation.close()
        return generation.text

    def expected_wait_s(self) -> float:
        """Roughly how long a request arriving now would wait for the model: the batches ahead of it."""
        ahead = (1 if self._running else 0) + math.ceil(self._queue.qsize() / self.max_batch)
        return ahead * (self._typical_s or 0.0)

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=f"guidepost-vlm-{self.name}", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        """The model's thread: gather a batch, generate for it, forever."""
        while True:
            batch = self._gather()
            if batch:
                self._run(batch)

    def _gather(self) -> list[Generation]:
        """The next batch: the first request, and those that arrive within the window, up to the batch size."""
        batch = [self._queue.get()]
        until = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())) if self.window_s
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return [generation for generation in batch if generation.claim()]  # abandoned ones: their deadline passed

    def _run(self, batch: list[Generation]) -> None:
        started, self._running = time.monotonic(), len(batch)
        try:
            inputs = batch[0].prepared.inputs if len(batch) == 1 else self.preprocess_batch([g.prepared for g in batch])
            self.forward(inputs, max_new_tokens=max(g.max_new_tokens for g in batch), stopping=_Rows(batch),
                         streamer=_Dispatch(batch, _eos_ids(self.model)))
        except BaseException as exc:  # handed to each request's consumer, which decides what a failure means
            for generation in batch:
                generation.end(exc)
        finally:
            for generation in batch:
                generation.end()
            elapsed = time.monotonic() - started
            self._typical_s = elapsed if self._typical_s is None else 0.8 * self._typical_s + 0.2 * elapsed
            self._running = 0


def _conversation(images: list[Image.Image], prompt: str, history: tuple[tuple[str, str], ...] = ()) -> list[dict]:
    content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": prompt}]
    earlier = [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in history]
    return [*earlier, {"role": "user", "content": content}]


def _eos_ids(model) -> set[int]:
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
