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
    # A base64 JSON body is 4/3 of the image; the image itself is checked against the limit after decoding.
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_image_mb * 2**20 * 4 / 3) + 2**16
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
