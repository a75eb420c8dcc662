"""The HTTP endpoints: /process, /healthz, /readyz, /info. Decode → pipeline → encode, nothing else."""
from __future__ import annotations

import hmac
from contextlib import closing
import os
import platform
import time

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from ..errors import NotReady, Unauthorized
from ..extension import Guidepost
from ..pipeline import Done
from ..presets import available_presets
from ..responses import encode_response
from ..versions import version
from .decode import decode_request
from .disconnect import client_gone
from .errors import error_body, request_id
from .metrics import record_answer, watch_first_event
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
    ext = guidepost()
    if not ext.ready:
        message = ("Models are still loading; retry shortly." if ext.state == "loading"
                   else "Models failed to load; see /readyz for the reason.")
        raise NotReady(message, retry_after=5)
    ext.admission.take()  # before parsing: refusing costs little
    release = ext.admission.release
    try:
        scene, streamed = decode_request(request, ext.limits, request_id(), received)
        events = ext.pipeline.stream(scene, should_stop=client_gone(request.environ))
        hazard = next(events)  # a client mistake (a deadline too short) is still a plain 4xx answer here

        def encode_done(done: Done, first_event_ms: float | None = None) -> dict:
            record_answer(scene, done.result)
            return encode_response(scene, done.result, ext.model_info(), started, first_event_ms)

        if not streamed:
            with closing(events):
                return jsonify(encode_done(next(item for item in events if isinstance(item, Done))))
        body = watch_first_event(sse_answer(hazard, events, started=started, encode_done=encode_done,
                                            request_id=scene.request_id, error_body=error_body), started)
        response = Response(stream_with_context(body), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.call_on_close(release)  # the slot is held while the answer streams
        release = None
        return response
    finally:
        if release is not None:
            release()


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


def check_api_key() -> None:
    """Unauthorized unless API keys are off or the request carries one (X-API-Key or Authorization: Bearer)."""
    keys = guidepost().settings.api_key_set
    if not keys:
        return
    given = request.headers.get("X-API-Key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not any(hmac.compare_digest(given.strip().encode(), key.encode()) for key in keys):
        raise Unauthorized("Missing or wrong API key: send it as X-API-Key or Authorization: Bearer.")
