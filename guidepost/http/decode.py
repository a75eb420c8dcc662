"""A Flask request → SceneRequest: multipart or JSON (base64 images) in, the shared field checks after."""
from __future__ import annotations

import base64
import binascii
import io
import re

from flask import Request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

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
        _whole_body(request)
        return _json_fields(request)
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        _whole_body(request)
        return _form_fields(request)
    raise UnsupportedMediaType(f"Send multipart/form-data or application/json, not '{mimetype or 'no Content-Type'}'.")


def _whole_body(request: Request) -> bytes:
    """The body, read once and kept for the parsers (and for a second multipart parse); 413 when it is too large."""
    data = request.get_data(cache=True, parse_form_data=False)  # a Content-Length over the limit: 413 here
    if not request.content_length and getattr(request.stream, "is_exhausted", False):
        # A chunked body has no length to refuse up front, and werkzeug stops reading it at the limit without a word:
        # the parsers would see a body cut short (a form without its image, broken JSON).
        raise RequestEntityTooLarge()
    return data


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
    files, form = _parse_form(request)
    uploads = files.getlist("image")
    if not uploads:
        hint = " It was sent as text: use -F image=@photo.jpg." if "image" in form else ""
        raise MalformedRequest("Field 'image' (a file) is required." + hint, code="missing_image")
    if "text" in files:
        raise InvalidField("text", "must be a form field, not a file: use -F text=\"...\"")
    return {"images": [upload.read() for upload in uploads], "stream": form.get("stream"),
            **{key: form.get(key) for key in _FIELDS}, "objects": form.getlist("objects") or None}


def _parse_form(request: Request) -> tuple[MultiDict, MultiDict]:
    """The form's files and fields; part headers that are not UTF-8 (a Latin-1 file name) are read as Latin-1."""
    if request.mimetype != "multipart/form-data":
        return request.files, request.form
    # werkzeug silently drops the whole form when one part header is not UTF-8: parse the kept body again.
    data = _whole_body(request)
    if request.files or request.form or not data:
        return request.files, request.form
    boundary = request.mimetype_params.get("boundary", "").encode("latin-1")
    fixed = latin1_part_headers(data, boundary) if boundary else data
    if fixed == data:
        return request.files, request.form
    _, form, files = request.make_form_data_parser().parse(io.BytesIO(fixed), request.mimetype, len(fixed),
                                                          request.mimetype_params)
    return files, form


def latin1_part_headers(body: bytes, boundary: bytes) -> bytes:
    """A multipart body whose part headers that are not UTF-8 are re-encoded from Latin-1; part contents untouched."""
    delimiter = b"--" + boundary
    parts = body.split(delimiter)
    for i, part in enumerate(parts[1:], start=1):
        head, blank_line, content = part.partition(b"\r\n\r\n")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            parts[i] = head.decode("latin-1").encode("utf-8") + blank_line + content
    return delimiter.join(parts)


def b64decode_image(value: str) -> bytes:
    """A base64 string or data URL → bytes; MalformedRequest when it is not base64."""
    payload = re.sub(r"\s+", "", _DATA_URL.sub("", value.strip(), count=1))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest("Field 'image' is not valid base64.", code="invalid_base64") from None
