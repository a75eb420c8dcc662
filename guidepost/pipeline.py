"""detect → assess → prompt → generate → speech, timed per stage; falls back to the detector alone."""
from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager

from PIL import Image

from .container_codes import read_codes
from .hazards import Assessment, Detection, Vocabulary
from .prompts import PromptBook, sanitize_question
from .scene import SceneRequest, SceneResult
from .speech import clean_for_speech

log = logging.getLogger(__name__)


class Pipeline:
    """Runs one request through the loaded models; holds no per-request state."""

    def __init__(self, detector, vlm, vocabulary: Vocabulary, prompts: PromptBook, *, max_words: int,
                 generate_timeout_s: float, max_question_chars: int = 500):
        self.detector = detector
        self.vlm = vlm
        self.vocabulary = vocabulary
        self.prompts = prompts
        self.max_words = max_words
        self.generate_timeout_s = generate_timeout_s
        self.max_question_chars = max_question_chars

    def run(self, request: SceneRequest) -> SceneResult:
        """Answer one request; a VLM failure yields a detector-only answer marked fallback."""
        timings: dict[str, float] = {}
        with _timed(timings, "detect"):
            detections, source = self.detect(request)
        assessment, kind, values, prompt = self.prompt_for(request, detections)
        deadline = time.monotonic() + self.generate_timeout_s  # waiting for a busy model counts too
        text = self._generate(request, prompt, deadline, timings)
        fallback = not text
        if fallback:
            # A hazard must never be silenced by the VLM: answer from the detector alone.
            text = self._fallback_text(kind, values, request)
        elif kind == "danger" and not _mentions(text, values["main_hazard"]):
            # The model described the scene or answered the question without the warning: lead with it.
            text = clean_for_speech(f"{self._fallback_text(kind, values, request)} {text}", self.max_words)
        codes = None
        if request.task == "read":  # ISO 6346 container codes in what was read; a bad check digit is spoken
            text, codes = read_codes(text, lambda code: self.prompts.render(
                request.task, request.lang, "check_digit_mismatch", code=code))
        return SceneResult(result=text, danger=assessment.danger, hazards=assessment.labels, objects=detections,
                           objects_source=source, prompt=kind, fallback=fallback, timings_ms=timings, codes=codes)

    def prompt_for(self, request: SceneRequest, detections: list[Detection]) -> tuple[Assessment, str, dict, str]:
        """The danger decision, the prompt kind and values, and the prompt the VLM gets (fine-tuning trains on it)."""
        assessment = Vocabulary.assess(detections)
        kind = "danger" if assessment.danger else "safe"
        values = self._template_values(detections, assessment, request)
        return assessment, kind, values, self.prompts.render(request.task, request.lang, kind, **values)

    def detect(self, request: SceneRequest) -> tuple[list[Detection], str]:
        """CLIP's labels for the scene, or the client's labels (CLIP skipped); with where they came from."""
        if request.objects is None:
            return self.detector.detect(request.scene), "clip"
        return self.vocabulary.normalise(request.objects), "client"

    def _generate(self, request: SceneRequest, prompt: str, deadline: float, timings: dict) -> str:
        """The VLM's answer cleaned for speech; "" when the model failed, timed out or said nothing speakable."""
        try:
            with _timed(timings, "preprocess"):
                inputs = self.vlm.preprocess(list(request.images), prompt)
            with _timed(timings, "generate"):
                raw = self.vlm.generate(inputs, deadline=deadline)
        except Exception as exc:  # only the model's own failures: a bug in the code around it stays a bug
            log.warning("request %s: generation failed, answering from the detector: %s: %s",
                        request.request_id, type(exc).__name__, exc)
            timings.setdefault("generate", 0.0)  # the stage was never reached
            return ""
        text = clean_for_speech(raw, self.max_words)
        if not text:
            log.warning("request %s: the VLM returned nothing speakable (%r), answering from the detector",
                        request.request_id, raw[:80])
        return text

    def warm_up(self) -> None:
        """Run both models once on a blank image so the first user does not pay for lazy initialisation."""
        blank = Image.new("RGB", (64, 64), (128, 128, 128))
        self.detector.detect(blank)  # a detector that cannot run makes the worker unready: let it raise
        try:
            inputs = self.vlm.preprocess([blank], "Describe the image.")
            self.vlm.generate(inputs, deadline=time.monotonic() + self.generate_timeout_s, max_new_tokens=1)
        except Exception as exc:
            # Still serve: every request can fall back to the detector, which keeps hazards audible.
            log.warning("VLM warm-up failed; requests will fall back to the detector: %s: %s",
                        type(exc).__name__, exc)

    def _template_values(self, detections: list[Detection], assessment: Assessment, request: SceneRequest) -> dict:
        spoken_hazards = [hazard.spoken(request.lang) for hazard in assessment.hazards]
        return {"objects": [detection.spoken(request.lang) for detection in detections], "hazards": spoken_hazards,
                "main_hazard": spoken_hazards[0] if spoken_hazards else "",
                "question": sanitize_question(request.text, self.max_question_chars)}

    def _fallback_text(self, kind: str, values: dict, request: SceneRequest) -> str:
        name = "fallback_danger" if kind == "danger" else ("fallback_safe" if values["objects"] else "fallback_nothing")
        return clean_for_speech(self.prompts.render(request.task, request.lang, name, **values), self.max_words)


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
