import base64
import io

import pytest
from PIL import Image

from server.images.decoding import ImageError, encode_data_url
from server.images.urls import ImageLimits, decode_image_url

LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=512 * 512)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats_decode_to_rgb(fmt):
    image = decode_image_url(encode_data_url(Image.new("RGB", (40, 30), "red"), fmt), LIMITS)
    assert image.size == (40, 30) and image.mode == "RGB"


def _err(url, limits=LIMITS) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_image_url(url, limits)
    return info.value


def test_remote_urls_are_refused_with_a_hint():
    assert "data: URL" in str(_err("https://example.com/cat.png"))


def test_bad_base64_and_undecodable_bytes_and_wrong_media_type():
    assert "base64" in str(_err("data:image/png;base64,@@@"))
    junk = base64.b64encode(b"not an image at all").decode()
    assert "could not be decoded" in str(_err(f"data:image/png;base64,{junk}"))
    png = encode_data_url(Image.new("RGB", (4, 4)), "PNG").split(",", 1)[1]
    assert "says JPEG" in str(_err(f"data:image/jpeg;base64,{png}"))
    assert "unsupported image media type" in str(_err(f"data:image/gif;base64,{png}"))
    assert "empty" in str(_err("data:image/png;base64,"))


def test_too_many_pixels_is_checked_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buffer, "PNG")  # small file, many pixels
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    err = _err(url)
    assert err.too_large and "pixels" in str(err)


def test_encoded_size_limit():
    url = encode_data_url(Image.effect_noise((300, 300), 100).convert("RGB"), "PNG")
    err = _err(url, ImageLimits(max_bytes=1000, max_pixels=10**8))
    assert err.too_large and "larger than 1000 bytes" in str(err)
