"""Request bodies a view did not read: drained (up to the body limit) so that a kept-alive connection stays usable."""
from __future__ import annotations

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

_CHUNK = 2**16


def drain_unread_body(response: Response) -> Response:
    """Read a body nobody parsed (a request refused early: 401, 404, 503), Content-Length or chunked alike."""
    # gunicorn keeps a connection alive only when at most 64 KiB of the body was left unread; past that it closes
    # it after announcing keep-alive (the client's next request on it fails) and lingers up to 2 s draining it.
    length, limit = request.content_length, current_app.config.get("MAX_CONTENT_LENGTH")
    chunked = length is None and bool(request.environ.get("wsgi.input_terminated"))
    if not (chunked or (length and (limit is None or length <= limit))):
        return response
    try:
        stream = request.stream  # werkzeug stops a chunked body at the limit with RequestEntityTooLarge
        while stream.read(_CHUNK):
            pass
    except HTTPException:  # a chunked body over the limit, or one cut short: its end is not worth waiting for
        close_connection()
    return response


def body_over_limit() -> bool:
    """Whether the whole body is over the limit (a 413 for the body, not for one form field)."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is not None:
        return bool(limit) and request.content_length > limit
    # A chunked body has no length to compare: werkzeug's stream says whether it was stopped at the limit.
    return bool(getattr(request.stream, "is_exhausted", False))


def close_connection() -> None:
    """Ask gunicorn to close this connection after the answer, rather than announce keep-alive and then drop it."""
    # WSGI has no way to say this (gunicorn ignores a Connection header from the app); gunicorn's chunked body reader
    # holds its request, whose force_close() does it. Under another server, or for a Content-Length body, nothing
    # happens and the server decides as before.
    reader = getattr(request.environ.get("wsgi.input"), "reader", None)
    force_close = getattr(getattr(reader, "req", None), "force_close", None)
    if callable(force_close):
        force_close()
