"""The HTTP layer: the only code that knows about Flask requests, statuses and JSON responses."""
from __future__ import annotations

from flask import Flask

from .api import bp
from .body import drain_unread_body
from .errors import register_error_handlers


def register_http(app: Flask) -> None:
    """Attach the endpoints and the error handlers."""
    register_error_handlers(app)
    app.register_blueprint(bp)
    app.after_request(drain_unread_body)
