"""Real photographs → ready-made /process request bodies (multipart or JSON, with or without client objects)."""
from __future__ import annotations

import base64
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from urllib3 import encode_multipart_formdata

from ..photos import jpeg_bytes, sample_photo

# scikit-image's colour photographs (shipped in the wheel): a kitchen, a portrait, a cat, a rocket on its pad.
DEFAULT_PHOTOS = ("coffee", "astronaut", "chelsea", "rocket")


@dataclass(frozen=True)
class Photo:
    """One image file's bytes, named for the report."""

    name: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Payload:
    """A complete /process body, encoded once so the client spends no time on it while measuring."""

    photo: str
    body: bytes
    content_type: str


def default_photos(size: tuple[int, int] = (640, 480), quality: int = 90) -> list[Photo]:
    """scikit-image's sample photographs, scaled and centre-cropped to `size`, as JPEG."""
    return [Photo(f"{name}.jpg", jpeg_bytes(sample_photo(name, size), quality), "image/jpeg")
            for name in DEFAULT_PHOTOS]


def photo_files(paths: list[Path]) -> list[Photo]:
    """Image files as they are on disk (sent byte for byte)."""
    return [Photo(path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")
            for path in paths]


def build_payloads(photos: list[Photo], fmt: str, objects: list[str] | None = None,
                   text: str | None = None) -> list[Payload]:
    """One body per photo: `fmt` is 'multipart' or 'json'; objects skip CLIP on the server."""
    payloads = []
    for photo in photos:
        if fmt == "json":
            fields = {"image": base64.b64encode(photo.data).decode("ascii")}
            if objects:
                fields["objects"] = objects
            if text:
                fields["text"] = text
            body, content_type = json.dumps(fields).encode(), "application/json"
        elif fmt == "multipart":
            parts = [("image", (photo.name, photo.data, photo.content_type))]
            parts += [("objects", ", ".join(objects))] if objects else []
            parts += [("text", text)] if text else []
            body, content_type = encode_multipart_formdata(parts)
        else:
            raise ValueError(f"unknown body format '{fmt}': use multipart or json")
        payloads.append(Payload(photo.name, body, content_type))
    return payloads
