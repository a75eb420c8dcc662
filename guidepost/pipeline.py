"""detect → assess → warn → prompt → generate → speech, as events; the hazard is told before the VLM starts."""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image

from .admission import Admission
from .container_codes import read_codes
from .errors import InvalidField
from .hazards import Assessment, Detection, Vocabulary
from .prompts import PromptBook, template_values
from .scene import SceneRequest, SceneResult
from .speech import clean_for_speech, complete_sentences, split_sentences
from .vlm import GenerationTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hazard:
    """The detector's verdict, sent before the VLM starts: the warning a client can speak at once."""

    danger: bool
    hazards: list[str]
    objects: list[Detection]
    directions: dict[str, str | None]
    warning: str | None  # None when nothing is dangerous


@dataclass(frozen=True)
class Sentence:
    """One complete, speech-cleaned sentence of the VLM's answer, as soon as it is generated."""

    text: str


@dataclass(frozen=True)
class KeepAlive:
    """Nothing new for a while: the model is still working."""


@dataclass(frozen=True)
class Done:
    """The whole answer, exactly what a non-streamed request gets."""

    result: SceneResult


@dataclass
class _Spoken:
    """What the VLM stage produced: the text, or why there is none."""

    text: str = ""
    reason: str | None = None
    truncated: bool = False
    finish_reason: str | None = None
    usage: dict = field(default_factory=dict)


class Pipeline:
    """Runs one request through the loaded models; holds no per-request state."""

    def __init__(self, detector, vlm, vocabulary: Vocabulary, prompts: PromptBook, *, max_words: int,
                 deadline_s: float, max_question_chars: int = 500, vlm_slots: Admission | None = None,
                 keepalive_s: float = 5.0):
        self.detector = detector
        self.vlm = vlm
        self.vocabulary = vocabulary
        self.prompts = prompts
        self.max_words = max_words
        self.deadline_s = deadline_s
        self.max_question_chars = max_question_chars
        self.vlm_slots = vlm_slots or Admission(0)
        self.keepalive_s = keepalive_s
        self.min_deadline_ms = 1  # measured at warm-up: less cannot even run the detector
        self.vlm_warm = threading.Event()  # set once the VLM's warm-up generation has ended (or failed)

    def run(self, request: SceneRequest, *, should_stop: Callable[[], bool] | None = None) -> SceneResult:
        """The whole answer to one request (stream() consumed)."""
        for event in self.stream(request, should_stop=should_stop):
            if isinstance(event, Done):
                return event.result
        raise RuntimeError("the pipeline ended without an answer")  # stream() always ends with Done

    def stream(self, request: SceneRequest, *,
               should_stop: Callable[[], bool] | None = None) -> Iterator[Hazard | Sentence | KeepAlive | Done]:
        """Hazard first, then each Sentence as the VLM produces it, then Done. A VLM failure, a busy VLM or the
        deadline give a detector-only answer (fallback, with the reason); InvalidField before anything is sent."""
        deadline = self._deadline(request)
        timings: dict[str, float] = {}
        with _timed(timings, "detect"):
            detections, source = self.detect(request)
        assessment, kind, values = self._assess(request, detections)
        warning = self._detector_text("danger", values, request) if assessment.danger else None
        directions = {hazard.label: hazard.direction for hazard in assessment.hazards}
        yield Hazard(assessment.danger, assessment.labels, detections, directions, warning)

        if request.mode == "quick":
            spoken = _Spoken(reason="quick")
        else:
            prompt = self.prompts.render(request.task, request.lang, kind, **values)
            spoken = yield from self._speak(request, prompt, deadline, timings, should_stop)
        text = spoken.text
        if not text:
            # A hazard must never be silenced by the VLM: answer from the detector alone.
            text = warning or self._detector_text(kind, values, request)
        elif warning and not _mentions(text, values["main_hazard"]):
            # The model described the scene or answered the question without the warning: lead with it.
            text = clean_for_speech(f"{warning} {text}", self.max_words)
        codes = None
        if request.task == "read":  # ISO 6346 container codes in what was read; a bad check digit is spoken
            codes, notices = read_codes(text, lambda code: self.prompts.render(
                request.task, request.lang, "check_digit_mismatch", code=code))
            for notice in notices:
                yield Sentence(notice)
            text = " ".join([text, *notices])
        yield Done(SceneResult(
            result=text, danger=assessment.danger, hazards=assessment.labels, objects=detections,
            objects_source=source, prompt=kind, fallback=not spoken.text, reason=None if spoken.text else spoken.reason,
            truncated=spoken.truncated, directions=directions, finish_reason=spoken.finish_reason, usage=spoken.usage,
            timings_ms=timings, codes=codes))

    def prompt_for(self, request: SceneRequest, detections: list[Detection]) -> tuple[str, str]:
        """(kind, prompt): the prompt the VLM gets for these detections, as stream() renders it (fine-tuning
        trains on it)."""
        _, kind, values = self._assess(request, detections)
        return kind, self.prompts.render(request.task, request.lang, kind, **values)

    def _assess(self, request: SceneRequest, detections: list[Detection]) -> tuple[Assessment, str, dict]:
        """The danger decision, the prompt kind (danger or safe) and the templates' values."""
        assessment = Vocabulary.assess(detections)
        kind = "danger" if assessment.danger else "safe"
        return assessment, kind, self._template_values(detections, assessment, request)

    def detect(self, request: SceneRequest) -> tuple[list[Detection], str]:
        """CLIP's labels for the scene, or the client's labels (CLIP skipped); with where they came from."""
        if request.objects is None:
            return self.detector.detect(request.scene), "clip"
        return self.vocabulary.normalise(request.objects), "client"

    def _deadline(self, request: SceneRequest) -> float:
        """The request's deadline as time.monotonic(): the client's if shorter than the default."""
        if request.deadline_ms is not None and request.deadline_ms < self.min_deadline_ms:
            raise InvalidField("deadline_ms", f"is {request.deadline_ms} ms; this worker needs at least "
                                              f"{self.min_deadline_ms} ms to run its detector")
        seconds = min(self.deadline_s, (request.deadline_ms or math.inf) / 1000)
        return request.received + seconds

    def _speak(self, request: SceneRequest, prompt: str, deadline: float, timings: dict,
               should_stop: Callable[[], bool] | None):
        """Generate with the VLM, yielding each finished sentence; returns _Spoken (empty text: why not)."""
        timings.update(preprocess=0.0, generate=0.0)
        if not self.vlm_slots.try_acquire():
            return _Spoken(reason="busy")  # GUIDEPOST_MAX_IN_FLIGHT requests already wait for or use the model
        try:
            if time.monotonic() + self.vlm.expected_wait_s() >= deadline:
                return _Spoken(reason="busy" if time.monotonic() < deadline else "timeout")
            with _timed(timings, "preprocess"), _model_failures():
                # history only when there is one: a VLM without chat history keeps its two-argument preprocess
                history = {"history": request.history} if request.history else {}
                inputs = self.vlm.preprocess(list(request.images), prompt, **history)
            with _timed(timings, "generate"):
                spoken = yield from self._generate(request, inputs, deadline, should_stop)
            return spoken
        except GenerationTimeout:
            return _Spoken(reason="busy")
        except ModelFailed as exc:
            log.warning("request %s: generation failed, answering from the detector: %s: %s",
                        request.request_id, type(exc.__cause__).__name__, exc.__cause__)
            return _Spoken(reason="error")
        finally:
            self.vlm_slots.release()

    def _generate(self, request: SceneRequest, inputs, deadline: float, should_stop):
        # A client's max_tokens may shorten the answer, never lengthen it past the preset's.
        budget = min(request.max_new_tokens, self.vlm.spec.max_new_tokens) if request.max_new_tokens else None
        with _model_failures():
            generation = self.vlm.stream(inputs, deadline=deadline, max_new_tokens=budget, should_stop=should_stop,
                                         poll_s=self.keepalive_s)
        sentences: list[str] = []
        try:
            for text in _guarded(generation):
                if text is None:
                    yield KeepAlive()
                    continue
                text, stopped = _until_stop(text, request.stop)
                done, enough = complete_sentences(text, self.max_words)
                for sentence in done[len(sentences):]:
                    yield Sentence(sentence)
                sentences = done
                if enough or stopped:
                    # No later sentence fits the word cap, or a stop string came: free the model now.
                    generation.stop("enough" if enough else "stop")
        except ModelFailed:
            if not sentences:
                raise
            generation.stopped_by = "error"  # keep what was said before the model failed
        except GeneratorExit:  # the streamed answer was closed: its client went away
            generation.close()
            log.info("request %s: client gone, generation stopped after %d tokens", request.request_id,
                     generation.new_tokens)
            raise
        finally:
            generation.close()
        usage = {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.new_tokens}
        if generation.stopped_by == "cancelled":
            log.info("request %s: client gone, generation stopped after %d tokens", request.request_id,
                     generation.new_tokens)
        if generation.stopped_by in ("deadline", "cancelled", "error"):
            # Cut mid-sentence: keep what was finished, say so.
            text = " ".join(sentences)
            return _Spoken(text, None if text else "timeout", bool(text), generation.stopped_by, usage)
        text = clean_for_speech(_until_stop(generation.text, request.stop)[0], self.max_words)
        for sentence in split_sentences(text)[len(sentences):]:
            yield Sentence(sentence)  # the last sentence, finished by the end of the answer
        if not text:
            log.warning("request %s: the VLM returned nothing speakable (%r), answering from the detector",
                        request.request_id, generation.text[:80])
        return _Spoken(text, None if text else "unspeakable", False, generation.stopped_by, usage)

    def warm_up(self) -> None:
        """Run the detector now (timing it gives the shortest deadline a request may ask for) and queue the VLM's
        first generation, which pays its lazy initialisation; vlm_warm is set when that ends."""
        blank = Image.new("RGB", (64, 64), (128, 128, 128))
        self.detector.detect(blank)  # a detector that cannot run makes the worker unready: let it raise
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            self.detector.detect(blank)
            runs.append(time.perf_counter() - started)
        self.min_deadline_ms = 10 * math.ceil((2 * sorted(runs)[1] * 1000 + 10) / 10)
        # The worker can warn from here on, so it does not wait for the VLM's warm-up (about 1 s on a CPU): a
        # request arriving meanwhile gets its hazard at once and its description after the warm-up, which reaches
        # the model's queue first (it has no photo to decode nor detector to run).
        threading.Thread(target=self._warm_up_vlm, args=(blank,), name="guidepost-vlm-warm-up", daemon=True).start()

    def _warm_up_vlm(self, blank: Image.Image) -> None:
        try:
            inputs = self.vlm.preprocess([blank], "Describe the image.")
            # generate(), not stream(): a VLM may bound its own warm-up (an upstream: its timeout_s).
            self.vlm.generate(inputs, deadline=time.monotonic() + max(self.deadline_s, 60), max_new_tokens=1)
        except Exception as exc:
            # Still serve: every request can fall back to the detector, which keeps hazards audible.
            log.warning("VLM warm-up failed; requests will fall back to the detector: %s: %s",
                        type(exc).__name__, exc)
        finally:
            self.vlm_warm.set()

    def _template_values(self, detections: list[Detection], assessment: Assessment, request: SceneRequest) -> dict:
        # Only vocabulary names reach the instructions; client labels it does not know only as quoted data.
        values = template_values(detections, assessment.hazards, request.lang, request.text, self.max_question_chars)
        direction = assessment.hazards[0].direction if assessment.hazards else None
        return {**values, "direction": direction,
                "where": self.prompts.render(request.task, request.lang, "where", direction=direction)}

    def _detector_text(self, kind: str, values: dict, request: SceneRequest) -> str:
        """The detector's own sentence: the warning for a hazard, else what was seen (or that nothing was)."""
        name = "fallback_danger" if kind == "danger" else ("fallback_safe" if values["objects"] else "fallback_nothing")
        return clean_for_speech(self.prompts.render(request.task, request.lang, name, **values), self.max_words)


class ModelFailed(RuntimeError):
    """The VLM itself failed (out of memory, a broken checkpoint, a driver error); its cause is the original error."""


@contextmanager
def _model_failures():
    """Turn the model's own failures into ModelFailed, so that only they become detector answers."""
    try:
        yield
    except GenerationTimeout:
        raise
    except Exception as exc:
        raise ModelFailed(str(exc)) from exc


def _guarded(generation):
    """Iterate a generation, with the model's failures (raised by its thread) turned into ModelFailed."""
    iterator = iter(generation)
    while True:
        with _model_failures():
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def _until_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the first of the client's stop strings, and whether one was found."""
    cut = min((index for index in (text.find(s) for s in stop if s) if index >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _mentions(text: str, name: str) -> bool:
    """Whether the answer names the hazard as a word; when unsure, say no (the warning is then added)."""
    name = name.casefold().strip()
    if any("\uac00" <= ch <= "\ud7a3" for ch in name):
        # Korean attaches particles (자동차가), so match a word start; one syllable (개) is too ambiguous.
        return len(name) > 1 and re.search(rf"(?<![\uac00-\ud7a3]){re.escape(name)}", text) is not None
    return re.search(rf"\b{re.escape(name)}(?:s|es)?\b", text.casefold()) is not None


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round((time.perf_counter() - start) * 1000, 2)
