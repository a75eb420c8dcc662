"""Real sample photographs (scikit-image ships them in its wheel): the one source for tests, bench and load."""
from __future__ import annotations

import io

from PIL import Image, ImageOps

def sample_photo(name: str, size: tuple[int, int] | None = None) -> Image.Image:
    """One of scikit-image's colour photographs (coffee, astronaut, chelsea, rocket, ... or motorcycle_left) as RGB,
    scaled and centre-cropped to size when given."""
    from skimage import data

    image = Image.fromarray(data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)())
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS) if size else image


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """The image as a JPEG file's bytes."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
