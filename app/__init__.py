"""Guidepost: hazard-first scene descriptions for blind and low-vision people."""
from __future__ import annotations

import logging

import click
from flask import Flask

from .admission import Admission
from .config import ConfigError, load_settings
from .errors import register_error_handlers
from .registry import Registry

__all__ = ["create_app", "ConfigError"]


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults → GUIDEPOST_* environment → `config` overrides; start loading models."""
    settings = load_settings(config)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(settings.log_level)

    app = Flask(__name__, static_folder=None)
    # A base64 JSON body is 4/3 of the image; the image itself is checked against the limit after decoding.
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_image_mb * 2**20 * 4 / 3) + 2**16
    app.config["GUIDEPOST"] = settings
    app.json.ensure_ascii = False  # Korean answers stay readable in the JSON

    register_error_handlers(app)
    from .api import bp
    app.register_blueprint(bp)
    from .cli import register_commands
    register_commands(app)

    try:
        registry = Registry(settings)
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc)) from None
    app.extensions["guidepost"] = registry
    app.extensions["guidepost.admission"] = Admission(settings.max_in_flight)  # one per worker: each builds its own app
    if click.get_current_context(silent=True) is None:
        if settings.load_in_background:
            registry.start(background=True)
        else:
            registry.ensure_loaded()  # raises ModelLoadError, so a broken model stops start-up
    # Under the flask CLI, commands that need models call registry.ensure_loaded(); `flask run` loads
    # on its first request instead.
    app.before_request(lambda: registry.start(background=True))
    return app
