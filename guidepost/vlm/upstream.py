"""The VLM on an OpenAI-compatible server (vLLM, Ollama, OVMS, another Guidepost): the interface of vlm.base.VLM,
each generation streamed from the upstream's /v1/chat/completions through one pooled client per worker."""
from __future__ import annotations

import base64
import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from PIL import Image

from ..presets import UpstreamSpec, VLMSpec
from . import GenerationTimeout
from .base import VLM, StopWhen

log = logging.getLogger(__name__)

_JPEG_QUALITY = 90  # photos travel as JPEG data URLs: a tenth of PNG's bytes, no visible loss for a VLM


class UpstreamUnavailable(RuntimeError):
    """The upstream did not answer its last check or request; requests answer from the detector until it does."""


class UpstreamVLM:
    """Sends the rendered prompt and the images to the upstream; detection, prompts and speech stay in Guidepost."""

    def __init__(self, spec: VLMSpec, upstream: UpstreamSpec, api_key: str):
        import openai  # here: only workers of the openai backend import the SDK

        self.spec, self.upstream, self.name = spec, upstream, upstream.model
        # One client per worker: its connection pool is shared by every request thread; no retries, since a retry
        # would spend the deadline of a user waiting for a warning.
        self.client = openai.OpenAI(base_url=upstream.url, api_key=api_key or "none", max_retries=0,
                                    timeout=openai.Timeout(upstream.timeout_s))
        self._state = {"ready": False, "state": "checking", "error": None, "checked": None}
        self._stop_watch = threading.Event()

    def preprocess(self, images: list[Image.Image], prompt: str, history: tuple[tuple[str, str], ...] = ()) -> list:
        """The chat messages the upstream gets: earlier turns as text, then the images (JPEG data URLs) and prompt."""
        content = [{"type": "image_url", "image_url": {"url": _data_url(image)}} for image in images]
        return [*({"role": role, "content": text} for role, text in history),
                {"role": "user", "content": [*content, {"type": "text", "text": prompt}]}]

    def stream(self, inputs: list, *, deadline: float, max_new_tokens: int | None = None,
               should_stop: Callable[[], bool] | None = None, poll_s: float | None = None) -> "UpstreamGeneration":
        """Start a streamed generation upstream, ending by the deadline (time.monotonic) or when should_stop() says so;
        UpstreamUnavailable at once while the upstream is known to be down."""
        if time.monotonic() >= deadline:
            raise GenerationTimeout("no time was left to generate")
        if self._state["state"] == "unreachable":
            raise UpstreamUnavailable(f"the upstream {self.upstream.url} is unreachable: {self._state['error']}")
        return UpstreamGeneration(self, inputs, max_new_tokens=max_new_tokens or self.spec.max_new_tokens,
                                  deadline=deadline, should_stop=should_stop, poll_s=poll_s)

    def generate(self, inputs: list, *, deadline: float, max_new_tokens: int | None = None,
                 should_stop: Callable[[], bool] | None = None) -> str:
        """The whole answer (stream() consumed), within upstream.timeout_s too: the warm-up's check of the upstream
        must not hold a worker's start-up for a minute when the upstream hangs."""
        return VLM.generate(self, inputs, deadline=min(deadline, time.monotonic() + self.upstream.timeout_s),
                            max_new_tokens=max_new_tokens, should_stop=should_stop)

    def expected_wait_s(self) -> float:
        """0: the upstream queues and batches requests itself, out of this worker's sight."""
        return 0.0

    def check(self) -> None:
        """Ask the upstream's /v1/models whether it serves the configured model; record the answer for health()."""
        import openai

        try:
            served = [model.id for model in self.client.models.list()]
        except Exception as exc:  # down, refusing, or not an OpenAI-compatible server: all mean not ready
            self._record("unreachable" if isinstance(exc, openai.APIConnectionError) else "error",
                         f"{type(exc).__name__}: {exc}")
            return
        if self.upstream.model in served:
            self._record("ready", None)
        else:
            self._record("model_missing", f"it serves {served[:10]}, not '{self.upstream.model}'")

    def watch(self) -> None:
        """Check now and then every upstream.check_s seconds, in a daemon thread (readiness, never per request)."""
        def run():
            while True:
                self.check()
                if self._stop_watch.wait(self.upstream.check_s):
                    return
        threading.Thread(target=run, name="guidepost-upstream-watch", daemon=True).start()

    def unwatch(self) -> None:
        """Stop the periodic checks."""
        self._stop_watch.set()

    def health(self) -> dict:
        """The upstream's state for /readyz: ready only when its /v1/models listed the model at the last check."""
        state = dict(self._state)
        checked = state.pop("checked")
        return {**state, "url": self.upstream.url, "model": self.upstream.model,
                "checked_s_ago": None if checked is None else round(time.monotonic() - checked, 1)}

    def _record(self, state: str, error: str | None) -> None:
        if state != self._state["state"]:
            (log.info if state == "ready" else log.warning)("upstream %s: %s%s", self.upstream.url, state,
                                                           f" ({error})" if error else "")
        self._state = {"ready": state == "ready", "state": state, "error": error, "checked": time.monotonic()}

    def _failed(self, exc: BaseException) -> BaseException:
        """What a failed generation raises: busy upstreams as GenerationTimeout (reason busy), the rest as they are."""
        import openai

        if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
            self._record("unreachable", f"{type(exc).__name__}: {exc}")  # fail fast until the next check succeeds
        if isinstance(exc, openai.APIStatusError) and exc.status_code in (429, 503):
            return GenerationTimeout(f"the upstream is busy ({exc.status_code})")
        return exc


class UpstreamGeneration:
    """One streamed upstream generation on its own thread: iterate for the text so far each time it grows (None when
    nothing arrived within poll_s). Afterwards: `text`, `prompt_tokens`, `new_tokens` and `stopped_by` (eos, length,
    deadline, cancelled or the reason given to stop()). close() stops it without waiting for a silent upstream."""

    def __init__(self, vlm: UpstreamVLM, messages: list, *, max_new_tokens: int, deadline: float,
                 should_stop: Callable[[], bool] | None, poll_s: float | None):
        self.vlm, self.deadline, self.poll_s = vlm, deadline, poll_s
        self.stopping = StopWhen(deadline, should_stop)  # why we ended it: deadline, cancelled, or stop()'s reason
        self.text, self.prompt_tokens, self.new_tokens = "", 0, 0
        self.stopped_by: str | None = None
        self._finish: str | None = None  # the upstream's finish_reason
        self._events: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(messages, max_new_tokens), daemon=True,
                                        name="guidepost-upstream")
        self._thread.start()

    def _run(self, messages: list, max_new_tokens: int) -> None:
        import openai

        try:
            left = max(0.001, self.deadline - time.monotonic())
            # Each read may wait until the deadline; the connection gets at most the upstream's own timeout.
            timeout = openai.Timeout(left, connect=min(left, self.vlm.upstream.timeout_s))
            stream = self.vlm.client.chat.completions.create(
                model=self.vlm.upstream.model, messages=messages, stream=True, max_tokens=max_new_tokens,
                temperature=0, stream_options={"include_usage": True}, timeout=timeout)
            with stream:  # leaving it closes the connection, which tells the upstream to stop generating
                for chunk in stream:
                    self._events.put(("chunk", chunk))
                    if self.stopping.check():
                        break
        except Exception as exc:  # handed to the consumer, which decides what a failure means
            self._events.put(("error", exc))
        finally:
            self._events.put(("end", None))

    def __iter__(self) -> Iterator[str | None]:
        while True:
            wait = max(0.0, self.deadline - time.monotonic()) + 0.05
            try:
                kind, value = self._events.get(timeout=min(wait, self.poll_s or wait))
            except queue.Empty:
                if self.stopping.check():
                    break  # the deadline passed or the client left while the upstream was silent: do not wait
                yield None
                continue
            if kind == "end":
                break
            if kind == "error":
                if not self.stopping.check():
                    raise self.vlm._failed(value)
                break  # a read that timed out at the deadline, or one cut short by stop(): not a failure
            if self._take(value):
                yield self.text
        self.stopped_by = self.stopping.reason or ("length" if self._finish == "length" else "eos")

    def _take(self, chunk) -> bool:
        """Add a chunk's text and counts; whether the text grew."""
        if chunk.usage is not None:
            self.prompt_tokens, self.new_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        grew = False
        for choice in chunk.choices:
            if choice.delta is not None and choice.delta.content:
                self.text += choice.delta.content
                grew = True
                if chunk.usage is None:
                    self.new_tokens += 1  # a chunk per token on vLLM and Ollama; the usage chunk corrects it
            self._finish = choice.finish_reason or self._finish
        return grew

    def stop(self, reason: str) -> None:
        """End the generation at the next chunk (the answer is long enough, say)."""
        self.stopping.stop(reason)

    def close(self) -> None:
        """Stop now; the reading thread closes the connection at the next chunk or by the deadline, on its own."""
        self.stop("cancelled")


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
