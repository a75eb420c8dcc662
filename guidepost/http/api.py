"""The HTTP endpoints: /process, /healthz, /readyz, /info. Decode → pipeline → encode, nothing else."""
from __future__ import annotations

from contextlib import closing
import os
import platform
import time

from flask import Blueprint, current_app, jsonify, request

from ..errors import NotReady
from ..extension import Guidepost
from ..pipeline import Done
from ..presets import available_presets
from ..responses import encode_response
from ..versions import version
from .auth import check_api_key
from .decode import decode_request
from .disconnect import client_gone
from .errors import error_body, request_id
from .metrics import record_answer, watch_first_event
from .slot import Slot
from .sse import sse_answer

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
    """Readiness: 200 once every model of this worker is loaded (and the upstream, if any, serves the model at its
    last check), 503 before (or after a failed load)."""
    ext = guidepost()
    body = {"status": ext.state, "preset": ext.preset.name, "worker": os.getpid()}
    if ext.error:
        body["error"] = ext.error
    upstream = ext.backend.health() if ext.backend is not None else None
    if upstream is not None:
        body["upstream"] = upstream
    ready = ext.ready and (upstream is None or upstream["ready"])
    if ext.ready and not ready:
        body["status"] = "upstream_not_ready"
    response = jsonify(body)
    if not ready:
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
                "max_images": limits.max_images, "max_queue": settings.max_queue,
                "max_in_flight": settings.max_in_flight, "image_max_side": limits.image_max_side,
                "deadline_ms": round(ext.deadline_s * 1000),
                "min_deadline_ms": ext.pipeline.min_deadline_ms if ext.pipeline else None},
        directions=ext.preset.detector.directions,
        versions={"python": platform.python_version(), **{name: version(name) for name in _VERSIONED}},
    )


@bp.post("/process")
def process():
    """Photo (+ optional question and client objects) → hazard-first spoken answer, as JSON or as events."""
    started, received = time.perf_counter(), time.monotonic()
    check_api_key()
    ext = ready_guidepost()
    with Slot(ext.admission) as slot:  # before parsing: refusing costs little
        scene, streamed = decode_request(request, ext.limits, request_id(), received)
        events = ext.pipeline.stream(scene, should_stop=client_gone(request.environ))
        hazard = next(events)  # a client mistake (a deadline too short) is still a plain 4xx answer here

        def encode_done(done: Done, first_event_ms: float | None = None) -> dict:
            record_answer(scene, done.result)
            return encode_response(scene, done.result, ext.model_info(), started, first_event_ms)

        if not streamed:
            with closing(events):
                return jsonify(encode_done(next(item for item in events if isinstance(item, Done))))
        return slot.stream(watch_first_event(sse_answer(hazard, events, started=started, encode_done=encode_done,
                                                        request_id=scene.request_id, error_body=error_body), started))


def ready_guidepost() -> Guidepost:
    """This app's extension once its models are loaded; NotReady (with Retry-After) while loading or after a failure."""
    ext = guidepost()
    if not ext.ready:
        message = ("Models are still loading; retry shortly." if ext.state == "loading"
                   else "Models failed to load; see /readyz for the reason.")
        raise NotReady(message, retry_after=5)
    return ext
