"""One request from raw fields to the /process body; shared by the HTTP view and anything that batches."""
from __future__ import annotations

import time

from .errors import ApiError
from .images import decode_image
from .pipeline import SceneRequest, SceneResult
from .registry import Registry

_MAX_LABEL_CHARS = 64


def answer(fields: dict, registry: Registry, settings, request_id: str, started: float | None = None) -> dict:
    """Answer one request given its raw fields (a list of image bytes + optional text/objects/lang/task)."""
    started = time.perf_counter() if started is None else started
    checked = validate(fields, registry, settings)  # cheap checks first: a bad field costs no decoding
    all_bytes = fields["images"]
    if len(all_bytes) > settings.max_images:
        raise _invalid("image", f"was sent {len(all_bytes)} times; at most {settings.max_images} images are accepted")
    decode_start = time.perf_counter()
    images = tuple(_decode(image_bytes, registry, settings) for image_bytes in all_bytes)
    decode_ms = (time.perf_counter() - decode_start) * 1000

    result = registry.pipeline.run(SceneRequest(images=images, request_id=request_id, **checked))
    timings = {"decode": round(decode_ms, 2), **result.timings_ms,
               "total": round((time.perf_counter() - started) * 1000, 2)}
    return encode(result, registry, timings, request_id)


def _decode(image_bytes: bytes, registry: Registry, settings):
    if len(image_bytes) > settings.max_image_mb * 2**20:
        raise ApiError(413, "payload_too_large",
                       f"The image is larger than {settings.max_image_mb:g} MB (GUIDEPOST_MAX_IMAGE_MB).")
    return decode_image(image_bytes, max_pixels=settings.max_image_pixels, max_side=registry.preset.image_max_side)


def validate(fields: dict, registry: Registry, settings) -> dict:
    """Check the optional fields and return them as SceneRequest arguments; a bad value is a 422 naming it."""
    text = fields.get("text")
    if text is not None and not isinstance(text, str):
        raise _invalid("text", "must be a string")
    if text and not _is_utf8(text):
        raise _invalid("text", "is not valid Unicode text")
    text = (text or "").strip()
    if len(text) > settings.max_text_chars:
        raise _invalid("text", f"is longer than {settings.max_text_chars} characters")

    task = fields.get("task") or "describe"
    lang = fields.get("lang") or "en"
    if not isinstance(task, str) or task not in registry.prompts.tasks:
        raise _invalid("task", f"must be one of {registry.prompts.tasks}")
    if not isinstance(lang, str) or not registry.prompts.has(task, lang):
        raise _invalid("lang", f"must be one of {registry.prompts.languages}")

    return {"text": text, "objects": _parse_objects(fields.get("objects"), settings.max_objects),
            "lang": lang, "task": task}


def _parse_objects(raw, max_objects: int) -> list[str] | None:
    """Repeated fields, one comma-separated string or a JSON list → labels; None (or empty) runs CLIP."""
    if raw is None:
        return None
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise _invalid("objects", "must be a list of strings or one comma-separated string")
    labels = [part.strip() for item in items for part in item.split(",") if part.strip()]
    if len(labels) > max_objects:
        raise _invalid("objects", f"has {len(labels)} labels; at most {max_objects} are accepted")
    if any(len(label) > _MAX_LABEL_CHARS for label in labels):
        raise _invalid("objects", f"labels must be at most {_MAX_LABEL_CHARS} characters")
    if not all(_is_utf8(label) for label in labels):
        raise _invalid("objects", "labels must be valid Unicode text")
    return labels or None  # an empty list says nothing was found by the client: let CLIP look


def _is_utf8(text: str) -> bool:
    # JSON can smuggle lone surrogates ("\udc80") that no encoder, tokenizer or response can carry.
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_field", f"Field '{field}' {problem}.")


def encode(result: SceneResult, registry: Registry, timings: dict, request_id: str) -> dict:
    """The /process response body."""
    return {
        "result": result.result,
        "danger": result.danger,
        "hazards": result.hazards,
        "objects": [{"label": d.label, "score": d.score} for d in result.objects],
        "objects_source": result.objects_source,
        "prompt": result.prompt,
        "fallback": result.fallback,
        "model": registry.info(),
        "timings_ms": timings,
        "request_id": request_id,
    }
