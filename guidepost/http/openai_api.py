"""The OpenAI-compatible endpoints: POST /v1/chat/completions (plain or streamed) and GET /v1/models, with OpenAI's
error shape. The same decode → pipeline → encode as /process, with OpenAI's encoders."""
from __future__ import annotations

import logging
import time
from contextlib import closing

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException, NotFound

from ..errors import GuidepostError, InvalidField
from ..pipeline import Done
from ..responses import encode_response
from .api import guidepost, ready_guidepost
from .auth import check_api_key
from .disconnect import client_gone
from .errors import error_headers, http_status, request_id
from .openai_decode import decode_chat, json_body, requested_model
from .openai_encode import completion, error_body, stream_chunks
from .slot import Slot

log = logging.getLogger(__name__)

bp = Blueprint("openai", __name__, url_prefix="/v1")

_STARTED = int(time.time())  # `created` of the models this worker lists


class ModelNotFound(NotFound):
    """A `model` this server does not answer to."""

    def __init__(self, name: str):
        super().__init__(f"The model '{name}' does not exist here; use one of {model_names()}.")


def model_names() -> list[str]:
    """The names a request's `model` may take: the VLM's id, the preset's name, or `guidepost`."""
    ext = guidepost()
    return list(dict.fromkeys([ext.model_info()["vlm"], ext.preset.name, "guidepost"]))


@bp.get("/models")
def models():
    """The model names this server answers to, as OpenAI's model list."""
    check_api_key()
    return jsonify(object="list", data=[_model(name) for name in model_names()])


@bp.get("/models/<path:name>")
def model(name: str):
    """One model, or 404 model_not_found."""
    check_api_key()
    if name not in model_names():
        raise ModelNotFound(name)
    return jsonify(_model(name))


@bp.post("/chat/completions")
def chat_completions():
    """A photo in the last user message → the hazard-first answer as a chat.completion, or as chunks when streamed."""
    started, received = time.perf_counter(), time.monotonic()
    check_api_key()
    ext = ready_guidepost()
    with Slot(ext.admission) as slot:  # before parsing: refusing costs little
        body = json_body(_json())
        if requested_model(body) not in model_names():
            raise ModelNotFound(requested_model(body))
        chat = decode_chat(body, ext.limits, request_id(), received, request.headers.get("X-Deadline-Ms"))
        events = ext.pipeline.stream(chat.scene, should_stop=client_gone(request.environ))
        hazard = next(events)  # a client mistake (a deadline too short) is still a plain 4xx answer here

        def encode_done(done: Done, first_event_ms: float | None = None) -> dict:
            return encode_response(chat.scene, done.result, ext.model_info(), started, first_event_ms)

        if not chat.stream:
            with closing(events):
                done = next(item for item in events if isinstance(item, Done))
            return jsonify(completion(chat, done.result, encode_done(done)))
        return slot.stream(stream_chunks(chat, hazard, events, started=started, encode_done=encode_done))


@bp.errorhandler(GuidepostError)
def _domain_error(exc: GuidepostError):
    param = getattr(exc, "param", None) or (exc.field if isinstance(exc, InvalidField) else None)
    return _error(http_status(exc), exc.code, exc.message, param, error_headers(exc))


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """A werkzeug error under /v1 (the app's routing errors too: register_http passes them here) in OpenAI's shape."""
    message = exc.description or exc.name
    if type(exc) is NotFound and request.url_rule is None:  # no route: say what there is
        message = (f"No such endpoint: {request.method} {request.path}. This server offers POST /v1/chat/completions "
                   "and GET /v1/models.")
    if exc.code == 413:
        message = ("The request body is too large: the photo may be at most "
                   f"{guidepost().settings.max_image_mb:g} MB (GUIDEPOST_MAX_IMAGE_MB), sent as base64.")
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
    if isinstance(exc, ModelNotFound):
        return _error(404, "model_not_found", message, "model")
    code = {413: "payload_too_large"}.get(exc.code, (exc.name or "error").lower().replace(" ", "_"))
    return _error(exc.code or 500, code, message, headers=headers)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    # The exception text may hold paths or model internals: it stays in the log.
    log.exception("unhandled error in request %s", request_id())
    return _error(500, "internal_error", "Internal server error; quote the X-Request-ID when reporting it.")


def _json():
    """The parsed body whatever its Content-Type (curl -d sends a form type), or None when it is not JSON."""
    try:
        return request.get_json(force=True, silent=True)
    except RecursionError:  # absurdly deep nesting; silent=True only covers ValueError
        return None


def _error(status: int, code: str, message: str, param: str | None = None, headers: dict | None = None):
    response = jsonify(error_body(status, code, message, param))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "guidepost"}
