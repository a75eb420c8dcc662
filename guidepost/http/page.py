"""GET /: the phone page (plain HTML, CSS and JavaScript in http/page/, shipped in the package: no build, no CDN)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_from_directory

bp = Blueprint("page", __name__)
PAGE_DIR = Path(__file__).with_name("page")
_FILES = {"page.js": "text/javascript", "page.css": "text/css"}  # the only files the page loads
# Everything from this server, nothing inline: a page that speaks to blind users must not run anyone else's code.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


@bp.get("/")
def index():
    """The page: take a photo, hear the warning at once, then the description."""
    return _send("index.html", "text/html")


@bp.get("/static/<path:filename>")
def static_file(filename: str):
    """The page's script and style."""
    if filename not in _FILES:
        abort(404)
    return _send(filename, _FILES[filename])


def _send(name: str, mimetype: str):
    response = send_from_directory(PAGE_DIR, name, mimetype=mimetype, max_age=0)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
