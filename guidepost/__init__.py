"""Guidepost: hazard-first scene descriptions for blind and low-vision people."""
from __future__ import annotations

from flask import Flask

from .config import ConfigError, load_settings
from .extension import Guidepost
from .loading import ModelLoadError

__all__ = ["create_app", "ConfigError", "Guidepost", "ModelLoadError"]


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults → GUIDEPOST_* environment → `config` overrides. Models load on start() (see wsgi.py)."""
    settings = load_settings(config)
    app = Flask(__name__, static_folder=None)
    # The image itself is checked against the limit after decoding; the front refuses larger bodies first.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False  # Korean answers stay readable in the JSON
    try:
        Guidepost(settings, app)
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc)) from None

    from .cli import register_commands
    from .http import register_http

    register_http(app)
    register_commands(app)
    return app
