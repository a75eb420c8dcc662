"""The HTTP layer: /process, /healthz, /readyz, /info. Parsing in, JSON out, nothing else."""
from __future__ import annotations

import base64
import binascii
import hmac
import platform
import re
import time
from importlib import metadata

from flask import Blueprint, current_app, jsonify, request

from .errors import ApiError, request_id
from .images import decode_image
from .pipeline import SceneRequest, SceneResult
from .presets import available_presets
from .registry import Registry

bp = Blueprint("api", __name__)

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_MAX_LABEL_CHARS = 64
_VERSIONED = ("torch", "transformers", "open_clip_torch", "flask", "pillow", "gunicorn")


def _registry() -> Registry:
    return current_app.extensions["guidepost"]


@bp.get("/healthz")
def healthz():
    """Liveness: 200 while the process runs."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: 200 once every model of this worker is loaded, 503 before (or after a failed load)."""
    registry = _registry()
    body = {"status": registry.state, "preset": registry.preset.name}
    if registry.error:
        body["error"] = registry.error
    if registry.ready:
        return jsonify(body)
    response = jsonify(body)
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


@bp.get("/info")
def info():
    """Preset, model ids, backend, device, languages, limits and library versions."""
    _check_api_key()
    registry, settings = _registry(), current_app.config["GUIDEPOST"]
    return jsonify(
        preset=registry.preset.name, description=registry.preset.description,
        presets=available_presets(settings.presets_dir), model=registry.info(), state=registry.state,
        device=str(registry.device) if registry.device else registry.preset.device,
        dtype=str(registry.dtype).removeprefix("torch.") if registry.dtype else registry.preset.dtype,
        tasks=registry.prompts.tasks, languages=registry.prompts.languages,
        vocabulary_size=len(registry.vocabulary.labels),
        limits={"max_image_mb": settings.max_image_mb, "max_image_pixels": settings.max_image_pixels,
                "max_text_chars": settings.max_text_chars, "max_objects": settings.max_objects,
                "image_max_side": registry.preset.image_max_side},
        versions={"python": platform.python_version(), **{name: _version(name) for name in _VERSIONED}},
    )


@bp.post("/process")
def process():
    """Photo (+ optional question and client objects) → hazard-first spoken answer."""
    started = time.perf_counter()
    _check_api_key()
    registry = _registry()
    if not registry.ready:
        message = ("Models are still loading; retry shortly." if registry.state == "loading"
                   else "Models failed to load; see /readyz for the reason.")
        raise ApiError(503, "not_ready", message, {"Retry-After": "5"})
    settings = current_app.config["GUIDEPOST"]

    fields = _read_fields()
    decode_start = time.perf_counter()
    image_bytes = fields.pop("image")
    if len(image_bytes) > settings.max_image_mb * 2**20:
        raise ApiError(413, "payload_too_large",
                       f"The image is larger than {settings.max_image_mb:g} MB (GUIDEPOST_MAX_IMAGE_MB).")
    image = decode_image(image_bytes, max_pixels=settings.max_image_pixels,
                         max_side=registry.preset.image_max_side)
    decode_ms = (time.perf_counter() - decode_start) * 1000
    scene = _validate(fields, registry, settings, image)

    result = registry.pipeline.run(scene)
    timings = {"decode": round(decode_ms, 2), **result.timings_ms,
               "total": round((time.perf_counter() - started) * 1000, 2)}
    return jsonify(_encode(result, registry, timings))


def _read_fields() -> dict:
    """Pull image bytes and raw fields out of a multipart or JSON body."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "The body is not a JSON object.")
        image = body.get("image")
        if not isinstance(image, str) or not image.strip():
            raise ApiError(400, "missing_image", "Field 'image' is required: a base64 string or a data URL.")
        return {"image": _b64decode(image), "text": body.get("text"), "objects": body.get("objects"),
                "lang": body.get("lang"), "task": body.get("task")}
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        upload = request.files.get("image")
        if upload is None:
            hint = " It was sent as text: use -F image=@photo.jpg." if "image" in request.form else ""
            raise ApiError(400, "missing_image", "Field 'image' (a file) is required." + hint)
        objects = request.form.getlist("objects")
        return {"image": upload.read(), "text": request.form.get("text"), "objects": objects or None,
                "lang": request.form.get("lang"), "task": request.form.get("task")}
    raise ApiError(415, "unsupported_media_type",
                   f"Send multipart/form-data or application/json, not '{mimetype or 'no Content-Type'}'.")


def _b64decode(value: str) -> bytes:
    payload = re.sub(r"\s+", "", _DATA_URL.sub("", value.strip(), count=1))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", "Field 'image' is not valid base64.") from None


def _validate(fields: dict, registry: Registry, settings, image) -> SceneRequest:
    """Check the optional fields; any bad value is a 422 naming the field."""
    text = fields.get("text")
    if text is not None and not isinstance(text, str):
        raise _invalid("text", "must be a string")
    text = (text or "").strip()
    if len(text) > settings.max_text_chars:
        raise _invalid("text", f"is longer than {settings.max_text_chars} characters")

    task = fields.get("task") or "describe"
    lang = fields.get("lang") or "en"
    if not isinstance(task, str) or task not in registry.prompts.tasks:
        raise _invalid("task", f"must be one of {registry.prompts.tasks}")
    if not isinstance(lang, str) or not registry.prompts.has(task, lang):
        raise _invalid("lang", f"must be one of {registry.prompts.languages}")

    return SceneRequest(image=image, text=text, objects=_parse_objects(fields.get("objects"), settings.max_objects),
                        lang=lang, task=task, request_id=request_id())


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
    return labels or None  # an empty list says nothing was found by the client: let CLIP look


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_field", f"Field '{field}' {problem}.")


def _check_api_key() -> None:
    keys = current_app.config["GUIDEPOST"].api_key_set
    if not keys:
        return
    given = request.headers.get("X-API-Key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not any(hmac.compare_digest(given.strip().encode(), key.encode()) for key in keys):
        raise ApiError(401, "unauthorized", "Missing or wrong API key: send it as X-API-Key or Authorization: Bearer.",
                       {"WWW-Authenticate": "Bearer"})


def _encode(result: SceneResult, registry: Registry, timings: dict) -> dict:
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
        "request_id": request_id(),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
