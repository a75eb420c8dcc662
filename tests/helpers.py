"""Small helpers shared by the tests."""
from __future__ import annotations

import io

from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **save_args) -> bytes:
    """Serialize a PIL image to bytes in the given format."""
    buf = io.BytesIO()
    image.save(buf, fmt, **save_args)
    return buf.getvalue()
