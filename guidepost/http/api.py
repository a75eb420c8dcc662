"""The HTTP endpoints: /process, /healthz, /readyz, /info. Decode → pipeline → encode, nothing else."""
from __future__ import annotations

import os
import platform
import time

from flask import Blueprint, current_app, jsonify, request

from ..errors import NotReady
from ..extension import Guidepost
from ..presets import available_presets
from ..responses import encode_response
from ..versions import version
from .auth import check_api_key
from .decode import decode_request
from .errors import request_id

bp = Blueprint("api", __name__)

_VERSIONED = ("torch", "transformers", "open_clip_torch", "openvino", "optimum-intel", "flask", "pillow", "gunicorn")


def guidepost() -> Guidepost:
    """This app's Guidepost extension."""
    return current_app.extensions["guidepost"]


@bp.get("/healthz")
def healthz():
    """Liveness: 200 while the process runs."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: 200 once every model of this worker is loaded, 503 before (or after a failed load)."""
    ext = guidepost()
    body = {"status": ext.state, "preset": ext.preset.name, "worker": os.getpid()}
    if ext.error:
        body["error"] = ext.error
    response = jsonify(body)
    if not ext.ready:
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return response


@bp.get("/info")
def info():
    """Preset, model ids, backend, device, languages, limits and library versions."""
    check_api_key()
    ext = guidepost()
    settings, limits = ext.settings, ext.limits
    return jsonify(
        preset=ext.preset.name, description=ext.preset.description, presets=available_presets(settings.presets_dir),
        model=ext.model_info(), state=ext.state, **ext.runtime(),
        tasks=ext.prompts.tasks, languages=ext.prompts.languages, vocabulary_size=len(ext.vocabulary.labels),
        limits={"max_image_mb": limits.max_image_mb, "max_image_pixels": limits.max_image_pixels,
                "max_text_chars": limits.max_text_chars, "max_objects": limits.max_objects,
                "max_images": limits.max_images, "max_in_flight": settings.max_in_flight,
                "image_max_side": limits.image_max_side},
        versions={"python": platform.python_version(), **{name: version(name) for name in _VERSIONED}},
    )


@bp.post("/process")
def process():
    """Photo (+ optional question and client objects) → hazard-first spoken answer."""
    started = time.perf_counter()
    check_api_key()
    ext = guidepost()
    if not ext.ready:
        message = ("Models are still loading; retry shortly." if ext.state == "loading"
                   else "Models failed to load; see /readyz for the reason.")
        raise NotReady(message, retry_after=5)
    with ext.admission.slot():  # before parsing: refusing costs little
        scene = decode_request(request, ext.limits, request_id())
        result = ext.pipeline.run(scene)
    return jsonify(encode_response(scene, result, ext.model_info(), started))
