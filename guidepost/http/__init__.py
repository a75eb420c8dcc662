"""The HTTP layer: the only code that knows about Flask requests, statuses and JSON responses."""
from __future__ import annotations

from flask import Flask

from . import openapi, page
from .api import bp
from .body import drain_unread_body
from .errors import register_error_handlers
from .metrics import register_metrics
from .openai_api import bp as openai_bp
from .openai_api import http_error as openai_http_error


def register_http(app: Flask) -> None:
    """Attach the endpoints (Guidepost's own and the OpenAI-compatible /v1/*), the phone page, the OpenAPI
    description, the metrics and the error handlers."""
    # Routing errors under /v1/ (no such path, wrong method) come in OpenAI's shape, as the SDKs expect.
    register_error_handlers(app, by_prefix={"/v1/": openai_http_error})
    register_metrics(app)
    app.register_blueprint(bp)
    app.register_blueprint(openai_bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(openapi.bp)
    app.after_request(drain_unread_body)
