"""Image bytes → RGB PIL image: format allow-list, size limits, EXIF orientation, mode conversion."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from .errors import ImageRejected, TooLarge, UnsupportedImage

register_heif_opener()  # phones send HEIC; pillow-heif plugs it into Image.open
# Our own pixel limit (checked from the header, before decoding) replaces Pillow's global bomb check, whose
# warning/error thresholds would contradict GUIDEPOST_MAX_IMAGE_PIXELS (and catching warnings is not thread-safe).
Image.MAX_IMAGE_PIXELS = None

# Only raster formats a camera or phone produces; never PDF/EPS (EPS runs Ghostscript).
# Phone MPO files open through the JPEG plugin; AVIF only where Pillow was built with it.
Image.init()
ALLOWED_FORMATS = tuple(f for f in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF") if f in Image.OPEN)


_RESIZABLE = ("RGB", "RGBA", "L", "LA", "CMYK")


def decode_image(data: bytes, *, max_pixels: int, max_side: int) -> Image.Image:
    """Decode untrusted bytes into an RGB image whose longest side is at most max_side."""
    if not data:
        raise ImageRejected("The image is empty (0 bytes).", code="empty_image")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImage(f"Not a supported image; send one of: {', '.join(ALLOWED_FORMATS)}.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(f"The image could not be read: {exc}.") from None

    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected("The image has no pixels.")
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels, width, height)
    try:
        if image.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale when that still covers max_side: much faster for phone photos.
            image.draft("RGB", (max_side, max_side))
        image.load()
        if image.mode in _RESIZABLE:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # shrink before any full-size copy
        ImageOps.exif_transpose(image, in_place=True)  # without an Orientation tag a copy would cost 0.2 ms
        image = to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected(f"The image is truncated or corrupt: {exc}.") from None
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is flattened onto white, high bit depths rescaled."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's convert() clips these to 0..255; rescale from the range the values were stored in.
        pixels = np.asarray(image, dtype=np.float64)
        return Image.fromarray(_to_uint8(pixels, image.mode), mode="L").convert("RGB")
    if "transparency" in image.info and image.mode in ("P", "L", "RGB"):
        image = image.convert("RGBA")  # a tRNS colour key is transparency too
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    peak = float(pixels.max()) if pixels.size else 0.0
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F":
        top = 1.0 if peak <= 1.0 else peak  # float images are usually 0..1
    else:  # 32-bit "I": 8- or 16-bit data in a wider container, rarely more
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    return np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)


def _too_many_pixels(max_pixels: int, width: int, height: int) -> TooLarge:
    return TooLarge(f"The image is too large ({width}x{height} = {width * height:,} pixels); "
                    f"the limit is {max_pixels:,} pixels (GUIDEPOST_MAX_IMAGE_PIXELS).", code="image_too_large")
