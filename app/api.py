"""The HTTP layer: /process, /healthz, /readyz, /info. Parsing in, JSON out, nothing else."""
from __future__ import annotations

import base64
import binascii
import hmac
import os
import platform
import re
import time
from importlib import metadata

from flask import Blueprint, current_app, jsonify, request

from .errors import ApiError, request_id
from .presets import available_presets
from .registry import Registry
from .service import answer

bp = Blueprint("api", __name__)

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_VERSIONED = ("torch", "transformers", "open_clip_torch", "openvino", "optimum-intel", "flask", "pillow", "gunicorn")


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
    body = {"status": registry.state, "preset": registry.preset.name, "worker": os.getpid()}
    if registry.error:
        body["error"] = registry.error
    response = jsonify(body)
    if not registry.ready:
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
        torch_threads=registry.torch_threads,
        openvino=registry.openvino.model_dump() if registry.backend == "openvino" else None,
        tasks=registry.prompts.tasks, languages=registry.prompts.languages,
        vocabulary_size=len(registry.vocabulary.labels),
        limits={"max_image_mb": settings.max_image_mb, "max_image_pixels": settings.max_image_pixels,
                "max_text_chars": settings.max_text_chars, "max_objects": settings.max_objects,
                "max_images": settings.max_images, "max_in_flight": settings.max_in_flight,
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
    with current_app.extensions["guidepost.admission"].slot():  # before parsing: refusing costs little
        body = answer(_read_fields(), registry, current_app.config["GUIDEPOST"], request_id(), started)
    return jsonify(body)


@bp.after_app_request
def _drain_unread_body(response):
    """Read a body nobody parsed (a request refused early: 401, 404, 503), so its connection stays usable."""
    # gunicorn keeps a connection alive only when at most 64 KiB of the body was left unread; past that it closes
    # it after announcing keep-alive (the client's next request on it fails) and lingers up to 2 s draining it.
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length and (limit is None or request.content_length <= limit):
        stream = request.stream
        while stream.read(2**16):
            pass
    return response


def _read_fields() -> dict:
    """Pull image bytes and raw fields out of a multipart or JSON body."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # absurdly deep nesting; silent=True only covers ValueError
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "The body is not a JSON object.")
        image = body.get("image")
        encoded = image if isinstance(image, list) and image else [image]
        if not all(isinstance(item, str) and item.strip() for item in encoded):
            raise ApiError(400, "missing_image",
                           "Field 'image' is required: a base64 string or a data URL (or a list of them).")
        return {"images": [_b64decode(item) for item in encoded], "text": body.get("text"), "objects": body.get("objects"),
                "lang": body.get("lang"), "task": body.get("task")}
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        uploads = request.files.getlist("image")
        if not uploads:
            hint = " It was sent as text: use -F image=@photo.jpg." if "image" in request.form else ""
            raise ApiError(400, "missing_image", "Field 'image' (a file) is required." + hint)
        if "text" in request.files:
            raise ApiError(422, "invalid_field", "Field 'text' must be a form field, not a file: use -F text=\"...\".")
        objects = request.form.getlist("objects")
        return {"images": [upload.read() for upload in uploads], "text": request.form.get("text"), "objects": objects or None,
                "lang": request.form.get("lang"), "task": request.form.get("task")}
    raise ApiError(415, "unsupported_media_type",
                   f"Send multipart/form-data or application/json, not '{mimetype or 'no Content-Type'}'.")


def _b64decode(value: str) -> bytes:
    payload = re.sub(r"\s+", "", _DATA_URL.sub("", value.strip(), count=1))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", "Field 'image' is not valid base64.") from None


def _check_api_key() -> None:
    keys = current_app.config["GUIDEPOST"].api_key_set
    if not keys:
        return
    given = request.headers.get("X-API-Key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not any(hmac.compare_digest(given.strip().encode(), key.encode()) for key in keys):
        raise ApiError(401, "unauthorized", "Missing or wrong API key: send it as X-API-Key or Authorization: Bearer.",
                       {"WWW-Authenticate": "Bearer"})


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
