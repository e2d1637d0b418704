"""An image part's URL to a decoded image: `data:` URLs always, http(s) URLs only where the
server allows remote images (`server.images.remote`)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from server.images.decoding import DecodeLimits, ImageError, decode_data_url
from server.images.remote import RemotePolicy, fetch_image


@dataclass(frozen=True)
class ImageLimits(DecodeLimits):
    remote: RemotePolicy | None = None  # None: http(s) image URLs are refused


def decode_image_url(url: str, limits: ImageLimits) -> Image.Image:
    if url[:8].lower().startswith(("http://", "https://")):
        if limits.remote is None:
            raise ImageError("remote image URLs are not enabled on this server; "
                             "send the image inline as a data: URL (base64)")
        return fetch_image(url, limits, limits.remote)
    return decode_data_url(url, limits)
