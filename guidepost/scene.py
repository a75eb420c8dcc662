"""One request, transport-free: raw fields → a validated SceneRequest; what the pipeline returns is a SceneResult."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from .errors import InvalidField, TooLarge
from .hazards import Detection
from .images import decode_image

MAX_LABEL_CHARS = 64


@dataclass(frozen=True)
class Limits:
    """What one worker accepts; built once from the settings, the preset and the prompt files."""

    max_image_mb: float
    max_image_pixels: int
    image_max_side: int
    max_text_chars: int
    max_objects: int
    max_images: int
    prompts: object  # PromptBook: which task and language pairs exist


@dataclass(frozen=True)
class SceneRequest:
    """One decoded request: its images (the first is the scene) and the client's optional fields."""

    images: tuple[Image.Image, ...]
    text: str = ""
    objects: list[str] | None = None  # None: run CLIP; a list: the client's labels, CLIP skipped
    lang: str = "en"
    task: str = "describe"
    mode: str = "full"  # quick: the detector's answer alone, no VLM (a camera sending a frame a second)
    deadline_ms: int | None = None  # the client's deadline from arrival; None: the preset's
    request_id: str = "-"
    decode_ms: float = 0.0
    # Set by the OpenAI-compatible endpoint only: earlier chat turns (role, text), a cap on new tokens, stop strings.
    history: tuple[tuple[str, str], ...] = ()
    max_new_tokens: int | None = None  # None: the preset's
    stop: tuple[str, ...] = ()
    received: float = field(default_factory=time.monotonic)  # time.monotonic() when the request arrived

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
    reason: str | None = None  # why the answer is the detector's alone: busy, error, timeout, unspeakable, quick
    truncated: bool = False  # the deadline cut the answer: it keeps the sentences completed before it
    directions: dict[str, str | None] = field(default_factory=dict)  # hazard label → left, ahead, right (None: unknown)
    finish_reason: str | None = None  # how generation ended: eos, length, deadline, cancelled, enough (word cap)
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens when the VLM ran
    timings_ms: dict[str, float] = field(default_factory=dict)
    codes: list[dict] | None = None  # task "read" only: ISO 6346 container codes (guidepost/container_codes.py)


class SceneFields(BaseModel):
    """The optional fields of a request, validated against the worker's Limits (passed as validation context)."""

    model_config = ConfigDict(extra="ignore")

    text: str = ""
    objects: list[str] | None = None
    lang: str = "en"
    task: str = "describe"
    mode: str = "full"
    deadline_ms: int | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value) -> str:
        if value in (None, ""):
            return "full"
        if value not in ("full", "quick"):
            raise InvalidField("mode", "must be 'full' (the VLM's answer) or 'quick' (the detector's alone)")
        return value

    @field_validator("deadline_ms", mode="before")
    @classmethod
    def _deadline(cls, value) -> int | None:
        if value in (None, ""):
            return None
        try:
            deadline = round(float(value))  # a form field or header arrives as text
        except (TypeError, ValueError, OverflowError):
            deadline = None
        if isinstance(value, bool) or deadline is None or not 1 <= deadline <= 3_600_000:
            raise InvalidField("deadline_ms", "must be a number of milliseconds from 1 to 3600000")
        return deadline

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, value, info: ValidationInfo) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidField("text", "must be a string")
        if not _is_utf8(value):
            raise InvalidField("text", "is not valid Unicode text")
        value = value.strip()
        if len(value) > info.context.max_text_chars:
            raise InvalidField("text", f"is longer than {info.context.max_text_chars} characters")
        return value

    @field_validator("objects", mode="before")
    @classmethod
    def _objects(cls, value, info: ValidationInfo) -> list[str] | None:
        """Repeated fields, one comma-separated string or a JSON list → labels; None (or empty) lets CLIP look."""
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise InvalidField("objects", "must be a list of strings or one comma-separated string")
        labels = [part.strip() for item in items for part in item.split(",") if part.strip()]
        limit = info.context.max_objects
        if len(labels) > limit:
            raise InvalidField("objects", f"has {len(labels)} labels; at most {limit} are accepted")
        if any(len(label) > MAX_LABEL_CHARS for label in labels):
            raise InvalidField("objects", f"labels must be at most {MAX_LABEL_CHARS} characters")
        if not all(_is_utf8(label) for label in labels):
            raise InvalidField("objects", "labels must be valid Unicode text")
        return labels or None  # an empty list says nothing was found by the client: let CLIP look

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value, info: ValidationInfo) -> str:
        tasks = info.context.prompts.tasks
        if value in (None, ""):
            return "describe"
        if not isinstance(value, str) or value not in tasks:
            raise InvalidField("task", f"must be one of {tasks}")
        return value

    @field_validator("lang", mode="before")
    @classmethod
    def _lang(cls, value, info: ValidationInfo) -> str:
        if value in (None, ""):
            return "en"
        if not isinstance(value, str) or value not in info.context.prompts.languages:
            raise InvalidField("lang", f"must be one of {info.context.prompts.languages}")
        return value

    @model_validator(mode="after")
    def _prompt_exists(self, info: ValidationInfo) -> "SceneFields":
        prompts = info.context.prompts
        if not prompts.has(self.task, self.lang):
            raise InvalidField("lang", f"must be one of {prompts.languages_of(self.task)} for task '{self.task}'")
        return self


def decode_fields(raw: dict, limits: Limits, request_id: str = "-", received: float | None = None) -> SceneRequest:
    """Raw fields (a list of image bytes + optional text/objects/lang/task/mode/deadline_ms) → SceneRequest, cheap
    checks first; `received` is time.monotonic() at arrival (now when not given)."""
    received = time.monotonic() if received is None else received
    # The validators raise InvalidField with our own words; pydantic itself has nothing left to reject.
    fields = SceneFields.model_validate({k: v for k, v in raw.items() if k != "images"}, context=limits)
    all_bytes = raw["images"]
    if len(all_bytes) > limits.max_images:
        raise InvalidField("image", f"was sent {len(all_bytes)} times; at most {limits.max_images} images are accepted")
    started = time.perf_counter()
    images = tuple(_decode(data, limits) for data in all_bytes)
    return SceneRequest(images=images, request_id=request_id, received=received,
                        decode_ms=round((time.perf_counter() - started) * 1000, 2), **fields.model_dump())


def _decode(data: bytes, limits: Limits) -> Image.Image:
    if len(data) > limits.max_image_mb * 2**20:
        raise TooLarge(f"The image is larger than {limits.max_image_mb:g} MB (GUIDEPOST_MAX_IMAGE_MB).")
    return decode_image(data, max_pixels=limits.max_image_pixels, max_side=limits.image_max_side)


def _is_utf8(text: str) -> bool:
    # JSON can smuggle lone surrogates ("\udc80") that no encoder, tokenizer or response can carry.
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
