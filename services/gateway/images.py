"""Uploaded still images (cameo appearances, first frames): checked before anything is stored.

An upload is trusted for nothing: its type is sniffed from the magic bytes (a declared mime_type must
agree), its dimensions are read from the header before a single pixel is decoded, so a decompression
bomb (a tiny file declaring a huge canvas) is refused at the header, and then it is decoded in full,
so a truncated or corrupt file is refused at upload time rather than failing a job later.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from kino.v1 import common_pb2
from services.common.errors import invalid_argument
from services.common.settings import MIB

MAX_IMAGE_BYTES = 16 * MIB
MAX_IMAGE_SIDE = 4096
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_FORMATS = {"image/png": ("PNG", ".png"), "image/jpeg": ("JPEG", ".jpg")}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    mime_type: str
    width: int
    height: int
    sha256: str

    @property
    def extension(self) -> str:
        return _FORMATS[self.mime_type][1]


def check_image(image: common_pb2.Image, field: str) -> CheckedImage:
    """Validates an uploaded PNG or JPEG; every failure is INVALID_ARGUMENT (FIELD_REQUIRED or INVALID_MEDIA).

    Decoding takes up to a few hundred milliseconds for a large image: call it off the event loop.
    """

    def bad(detail: str):
        return invalid_argument("INVALID_MEDIA", f"{field}: {detail}", field=field, detail=detail)

    data = bytes(image.data)
    if not data:
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    if len(data) > MAX_IMAGE_BYTES:
        raise bad(f"the file is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    sniffed = _sniff(data)
    if sniffed is None:
        raise bad("not a PNG or JPEG file")
    if image.mime_type and image.mime_type != sniffed:
        raise bad(f"declared {image.mime_type} but the bytes are {sniffed}")
    pillow_format = _FORMATS[sniffed][0]
    try:
        # Opening reads only the header; Pillow itself refuses canvases far beyond any sane size.
        with Image.open(io.BytesIO(data), formats=[pillow_format]) as opened:
            width, height = opened.size
            if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
                raise bad(f"{width}x{height} exceeds {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
            opened.load()
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise bad(f"cannot be decoded ({type(error).__name__})") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise bad(f"cannot be decoded ({error})") from error
    return CheckedImage(data, sniffed, width, height, hashlib.sha256(data).hexdigest())


def decode_rgb(data: bytes, width: int, height: int) -> np.ndarray:
    """A checked image as uint8 (height, width, 3) RGB, resized to the model's resolution."""
    with Image.open(io.BytesIO(data)) as opened:
        rgb = opened.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def _sniff(data: bytes) -> str | None:
    if data.startswith(PNG_MAGIC):
        return "image/png"
    if data.startswith(JPEG_MAGIC):
        return "image/jpeg"
    return None
