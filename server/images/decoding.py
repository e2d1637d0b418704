"""Image bytes and `data:` URLs: media type, size and pixel limits checked before decoding, then
decoded to RGB PIL images. Pure: no network (remote URLs are `server.images.remote`)."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image

ACCEPTED = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/webp": "WEBP"}
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,",
                       re.IGNORECASE)


class ImageError(ValueError):
    """A client-side problem with an image: becomes a 400 (or 413 when too large)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int
    max_pixels: int


def decode_data_url(url: str, limits: DecodeLimits) -> Image.Image:
    match = _DATA_URL.match(url)
    if not match:
        raise ImageError("image_url must be a data: URL with base64 content, "
                         "e.g. data:image/png;base64,...")
    mime = (match.group("mime") or "").lower()
    if mime not in ACCEPTED:
        raise ImageError(f"unsupported image media type {mime or '(none)'!r}; "
                         "accepted: image/png, image/jpeg, image/webp")
    payload = url[match.end():]
    if len(payload) * 3 // 4 > limits.max_bytes:
        raise ImageError(f"image is larger than {limits.max_bytes} bytes", too_large=True)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image_url data is not valid base64") from None
    return decode_image_bytes(raw, ACCEPTED[mime], limits)


def decode_image_bytes(raw: bytes, expected_format: str, limits: DecodeLimits) -> Image.Image:
    if not raw:
        raise ImageError("image is empty")
    if len(raw) > limits.max_bytes:
        raise ImageError(f"image is larger than {limits.max_bytes} bytes", too_large=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image has too many pixels: {exc}", too_large=True) from None
    except Exception:
        raise ImageError("image bytes could not be decoded as an image") from None
    if image.format != expected_format:
        raise ImageError(f"image is {image.format or 'unknown'}, but its data URL says "
                         f"{expected_format}")
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageError("image has zero size")
    if width * height > limits.max_pixels:
        raise ImageError(f"image has {width}x{height} pixels, more than the limit of "
                         f"{limits.max_pixels}", too_large=True)
    try:
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")  # no copy when RGB
    except Exception:
        raise ImageError("image bytes could not be decoded as an image") from None


def encode_data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """The inverse, for clients and tests."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"
