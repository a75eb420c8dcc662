"""ApiError and the one JSON error shape: {"error": {"code", "message", "request_id"}}."""
from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ApiError(Exception):
    """A client-facing error with an HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def request_id() -> str:
    """The current request's id: the client's X-Request-ID when sane, else a new one."""
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
    return g.request_id


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    """Build the JSON error response every failure path uses."""
    body = {"error": {"code": code, "message": message, "request_id": request_id()}}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_code(exc: HTTPException) -> str:
    # werkzeug names are "Not Found", "Request Entity Too Large", ...
    return {413: "payload_too_large"}.get(exc.code, (exc.name or "error").lower().replace(" ", "_"))


def register_error_handlers(app: Flask) -> None:
    """Route ApiError, werkzeug HTTP errors and unexpected exceptions to the JSON shape."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = exc.description or exc.name
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if exc.code == 413:
            if request.content_length and limit and request.content_length > limit:
                message = f"Request body is larger than the {limit / 2**20:.1f} MB limit (GUIDEPOST_MAX_IMAGE_MB)."
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
