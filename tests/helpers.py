"""Small helpers shared by the tests."""
from __future__ import annotations

import io

from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **save_args) -> bytes:
    """Serialize a PIL image to bytes in the given format."""
    buf = io.BytesIO()
    image.save(buf, fmt, **save_args)
    return buf.getvalue()


def presets_dir(folder, **presets: str):
    """A presets folder holding the shipped vocabulary (unless given) and the given preset YAML texts."""
    from app.config import PROJECT_ROOT

    folder.mkdir(parents=True, exist_ok=True)
    files = {"vocabulary": (PROJECT_ROOT / "models" / "vocabulary.yaml").read_text(), **presets}
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder
