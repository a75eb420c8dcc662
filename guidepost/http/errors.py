"""The one JSON error shape, request ids, and the one place where domain errors become HTTP statuses."""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import (GuidepostError, ImageRejected, InvalidField, MalformedRequest, NotReady, Overloaded, TooLarge,
                      Unauthorized, UnsupportedImage, UnsupportedMediaType)
from .body import body_over_limit

log = logging.getLogger(__name__)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Most specific first: UnsupportedImage is an ImageRejected with its own status.
STATUS = {UnsupportedImage: 415, ImageRejected: 400, MalformedRequest: 400, Unauthorized: 401, TooLarge: 413,
          UnsupportedMediaType: 415, InvalidField: 422, NotReady: 503, Overloaded: 503}


def http_status(error: GuidepostError) -> int:
    """The HTTP status a domain error is answered with."""
    return next(status for kind, status in STATUS.items() if isinstance(error, kind))


def request_id() -> str:
    """The current request's id: the client's X-Request-ID when sane, else a new one."""
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
    return g.request_id


def error_body(code: str, message: str) -> dict:
    """The one error shape: {"error": {"code", "message", "request_id"}}."""
    g.error_code = code  # the request's metrics count it by code (a streamed answer's error event too)
    return {"error": {"code": code, "message": message, "request_id": request_id()}}


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    """Build the JSON error response every failure path uses."""
    response = jsonify(error_body(code, message))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def error_headers(error: GuidepostError) -> dict:
    """Retry-After when the client should come back, WWW-Authenticate when it must authenticate."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def _http_code(exc: HTTPException) -> str:
    # werkzeug names are "Not Found", "Request Entity Too Large", ...
    return {413: "payload_too_large"}.get(exc.code, (exc.name or "error").lower().replace(" ", "_"))


def register_error_handlers(app: Flask, by_prefix: dict[str, Callable] | None = None) -> None:
    """Route domain errors, werkzeug HTTP errors and unexpected exceptions to the JSON shape; by_prefix: a path
    prefix → the handler of werkzeug errors that its blueprint did not see (routing: no such path, wrong method)."""

    @app.errorhandler(GuidepostError)
    def _domain_error(exc: GuidepostError):
        return error_response(http_status(exc), exc.code, exc.message, error_headers(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        for prefix, handler in (by_prefix or {}).items():
            if request.path.startswith(prefix):
                return handler(exc)
        message = exc.description or exc.name
        if exc.code == 413:
            if body_over_limit():  # Content-Length or chunked: the same words as the front's 413
                message = app.extensions["guidepost"].settings.body_too_large_message
            else:  # werkzeug's per-field and part-count limits for multipart forms
                message = "A form field is too large or the form has too many parts; send one image and short fields."
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        return error_response(exc.code or 500, _http_code(exc), message, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The exception text may hold paths or model internals: it stays in the log.
        log.exception("unhandled error in request %s", request_id())
        return error_response(500, "internal_error", "Internal server error; quote the request_id when reporting it.")

    @app.after_request
    def _tag_response(response):
        response.headers["X-Request-ID"] = request_id()
        return response
