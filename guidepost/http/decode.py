"""A Flask request → SceneRequest: multipart or JSON (base64 images) in, the shared field checks after."""
from __future__ import annotations

import base64
import binascii
import re

from flask import Request

from ..errors import MalformedRequest, InvalidField, UnsupportedMediaType
from ..scene import Limits, SceneRequest, decode_fields

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


_FIELDS = ("text", "objects", "lang", "task", "mode", "deadline_ms")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def decode_request(request: Request, limits: Limits, request_id: str,
                   received: float | None = None) -> tuple[SceneRequest, bool]:
    """(scene, streamed): the body parsed, then fields validated and images decoded exactly as a batch does
    (scene.decode_fields); streamed when the client asked for Server-Sent Events."""
    raw = read_fields(request)
    if raw.get("deadline_ms") in (None, "") and request.headers.get("X-Deadline-Ms"):
        raw["deadline_ms"] = request.headers["X-Deadline-Ms"]
    streamed = _flag("stream", raw.pop("stream", None)) or any(
        mimetype == "text/event-stream" for mimetype, _ in request.accept_mimetypes)
    return decode_fields(raw, limits, request_id, received), streamed


def _flag(name: str, value) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidField(name, "must be true or false")


def read_fields(request: Request) -> dict:
    """Image bytes and raw field values out of a multipart or JSON body."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        return _json_fields(request)
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return _form_fields(request)
    raise UnsupportedMediaType(f"Send multipart/form-data or application/json, not '{mimetype or 'no Content-Type'}'.")


def _json_fields(request: Request) -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting; silent=True only covers ValueError
        body = None
    if not isinstance(body, dict):
        raise MalformedRequest("The body is not a JSON object.", code="invalid_json")
    image = body.get("image")
    encoded = image if isinstance(image, list) and image else [image]
    if not all(isinstance(item, str) and item.strip() for item in encoded):
        raise MalformedRequest("Field 'image' is required: a base64 string or a data URL (or a list of them).",
                               code="missing_image")
    return {"images": [b64decode_image(item) for item in encoded], "stream": body.get("stream"),
            **{key: body.get(key) for key in _FIELDS}}


def _form_fields(request: Request) -> dict:
    uploads = request.files.getlist("image")
    if not uploads:
        hint = " It was sent as text: use -F image=@photo.jpg." if "image" in request.form else ""
        raise MalformedRequest("Field 'image' (a file) is required." + hint, code="missing_image")
    if "text" in request.files:
        raise InvalidField("text", "must be a form field, not a file: use -F text=\"...\"")
    return {"images": [upload.read() for upload in uploads], "stream": request.form.get("stream"),
            **{key: request.form.get(key) for key in _FIELDS}, "objects": request.form.getlist("objects") or None}


def b64decode_image(value: str) -> bytes:
    """A base64 string or data URL → bytes; MalformedRequest when it is not base64."""
    payload = re.sub(r"\s+", "", _DATA_URL.sub("", value.strip(), count=1))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest("Field 'image' is not valid base64.", code="invalid_base64") from None
