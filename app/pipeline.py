"""detect → assess → prompt → generate → speech, timed per stage; falls back to the detector alone."""
from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image

from .hazards import Detection, Vocabulary
from .prompts import PromptBook, sanitize_question
from .speech import clean_for_speech

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneRequest:
    """One decoded request: its images (the first is the scene) and the client's optional fields."""

    images: tuple[Image.Image, ...]
    text: str = ""
    objects: list[str] | None = None  # None: run CLIP; a list: the client's labels, CLIP skipped
    lang: str = "en"
    task: str = "describe"
    request_id: str = "-"

    @property
    def scene(self) -> Image.Image:
        """The image CLIP looks at; further images only go to the VLM, in order."""
        return self.images[0]


@dataclass
class SceneResult:
    """What the pipeline decided and said, with per-stage timings in milliseconds."""

    result: str
    danger: bool
    hazards: list[str]
    objects: list[Detection]
    objects_source: str
    prompt: str
    fallback: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


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
            if request.objects is None:
                detections, source = self.detector.detect(request.scene), "clip"
            else:
                detections, source = self.vocabulary.normalise(request.objects), "client"
        assessment = self.vocabulary.assess(detections)
        kind = "danger" if assessment.danger else "safe"
        values = self._template_values(detections, assessment.hazards, request)
        prompt = self.prompts.render(request.task, request.lang, kind, **values)

        fallback = False
        with _timed(timings, "generate"):
            try:
                raw = self.vlm.generate(list(request.images), prompt, timeout_s=self.generate_timeout_s)
                text = clean_for_speech(raw, self.max_words)
                if not text:
                    raise ValueError(f"the VLM returned nothing speakable ({raw[:80]!r})")
            except Exception as exc:
                # A hazard must never be silenced by the VLM: answer from the detector alone.
                log.warning("request %s: generation failed, answering from the detector: %s: %s",
                            request.request_id, type(exc).__name__, exc)
                text, fallback = self._fallback_text(kind, values, request), True
            else:
                if kind == "danger" and not _mentions(text, values["main_hazard"]):
                    # The model described the scene or answered the question without the warning: lead with it.
                    warning = self._fallback_text(kind, values, request)
                    text = clean_for_speech(f"{warning} {text}", self.max_words)
        return SceneResult(result=text, danger=assessment.danger, hazards=assessment.hazards, objects=detections,
                           objects_source=source, prompt=kind, fallback=fallback, timings_ms=timings)

    def warm_up(self) -> None:
        """Run both models once on a blank image so the first user does not pay for lazy initialisation."""
        blank = Image.new("RGB", (64, 64), (128, 128, 128))
        self.detector.detect(blank)  # a detector that cannot run makes the worker unready: let it raise
        try:
            self.vlm.generate([blank], "Describe the image.", timeout_s=self.generate_timeout_s, max_new_tokens=1)
        except Exception as exc:
            # Still serve: every request can fall back to the detector, which keeps hazards audible.
            log.warning("VLM warm-up failed; requests will fall back to the detector: %s: %s",
                        type(exc).__name__, exc)

    def _template_values(self, detections, hazards, request: SceneRequest) -> dict:
        spoken = [self.vocabulary.spoken(d.label, request.lang) for d in detections]
        spoken_hazards = [self.vocabulary.spoken(h, request.lang) for h in hazards]
        return {"objects": spoken, "hazards": spoken_hazards,
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
