"""Image ingestion: every format and mode a client may send, and every way it can be wrong."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from guidepost.errors import GuidepostError
from guidepost.http.errors import http_status
from guidepost.images import decode_image
from tests.helpers import encode

LIMITS = {"max_pixels": 40_000_000, "max_side": 1024}


def decode(data: bytes, **limits) -> Image.Image:
    return decode_image(data, **{**LIMITS, **limits})


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_common_formats_decode_to_rgb(photo, fmt):
    image = decode(encode(photo, fmt))
    assert image.mode == "RGB" and image.size == photo.size


def test_heic_from_phone_decodes(photo):
    heif = pillow_heif.from_pillow(photo)
    buf = io.BytesIO()
    heif.save(buf, quality=80)
    image = decode(buf.getvalue())
    assert image.mode == "RGB" and image.size == photo.size
    # The content survives: a lossy round trip stays close to the original.
    assert np.abs(np.asarray(image, dtype=int) - np.asarray(photo, dtype=int)).mean() < 12


def test_exif_orientation_is_applied():
    # A 40x20 image tagged "rotate 90° CW" (orientation 6) must come out 20x40.
    wide = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode(encode(wide, "JPEG", exif=exif))
    assert image.size == (20, 40)


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert decode(encode(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (8, 8), (0, 0))
    assert decode(encode(la, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency():
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    pal.info["transparency"] = 0
    assert decode(encode(pal, "PNG", transparency=0)).getpixel((0, 0)) == (255, 255, 255)
    opaque = Image.new("P", (8, 8), 0)
    opaque.putpalette([10, 20, 30] + [0] * 765)
    assert decode(encode(opaque, "PNG")).getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize("mode,key", [("L", 7), ("RGB", (7, 7, 7))])
def test_colour_key_transparency_is_flattened(mode, key):
    image = Image.new(mode, (8, 8), key)
    assert decode(encode(image, "PNG", transparency=key)).getpixel((0, 0)) == (255, 255, 255)


def test_32_bit_integer_images_keep_their_brightness():
    dark = Image.fromarray(np.full((8, 8), 20, dtype=np.int32), mode="I")
    assert decode(encode(dark, "TIFF")).getpixel((0, 0)) == (20, 20, 20), "8-bit data in a 32-bit container"
    mid16 = Image.fromarray(np.full((8, 8), 32768, dtype=np.int32), mode="I")
    assert 120 <= decode(encode(mid16, "TIFF")).getpixel((0, 0))[0] <= 135


def test_pixel_limit_above_pillows_own_bomb_threshold_is_respected():
    # Pillow alone would refuse > 179M pixels; a configured limit above that must be ours, not Pillow's.
    data = encode(Image.new("1", (14000, 14000)), "PNG")  # 196M pixels, a few KB
    image = decode(data, max_pixels=200_000_000, max_side=64)
    assert max(image.size) == 64


def test_cmyk_jpeg(photo):
    image = decode(encode(photo.convert("CMYK"), "JPEG"))
    assert image.mode == "RGB" and image.size == photo.size


def test_16_bit_grey_is_rescaled_not_clipped():
    # Mid-grey in 16 bits (32768) must become mid-grey in 8 bits, not white.
    grey16 = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    image = decode(encode(grey16, "PNG"))
    assert image.mode == "RGB"
    assert 120 <= image.getpixel((0, 0))[0] <= 135


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue", "green")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    r, g, b = decode(data).getpixel((0, 0))
    assert r > 200 and g < 50 and b < 50


def test_large_photo_is_downscaled_to_max_side(photo):
    big = photo.resize((3000, 2000))
    image = decode(encode(big, "JPEG"), max_side=512)
    assert max(image.size) == 512 and image.size[0] > image.size[1]


@pytest.mark.parametrize("data,status,code", [
    (b"", 400, "empty_image"),
    (b"just some text, not an image", 415, "unsupported_image"),
    (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF", 415, "unsupported_image"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>', 415, "unsupported_image"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), 415, "unsupported_image"),
])
def test_non_images_are_rejected(data, status, code):
    with pytest.raises(GuidepostError) as err:
        decode(data)
    assert (http_status(err.value), err.value.code) == (status, code)


def test_real_pdf_is_rejected(photo):
    with pytest.raises(GuidepostError) as err:
        decode(encode(photo, "PDF"))
    assert http_status(err.value) == 415


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_400(photo, fmt):
    data = encode(photo, fmt)
    with pytest.raises(GuidepostError) as err:
        decode(data[: len(data) // 2])
    assert (http_status(err.value), err.value.code) == (400, "invalid_image")


def test_pixel_limit_is_413():
    data = encode(Image.new("RGB", (3000, 3000)), "PNG")
    with pytest.raises(GuidepostError) as err:
        decode(data, max_pixels=1_000_000)
    assert http_status(err.value) == 413 and "3000x3000" in err.value.message


def test_decompression_bomb_header_is_413():
    # A 64-byte PNG whose header claims 100000 x 100000 pixels: rejected before any pixel is decoded.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(GuidepostError) as err:
        decode(png)
    assert http_status(err.value) == 413
