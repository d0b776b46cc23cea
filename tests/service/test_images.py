"""Upload inspection on real files: the bytes decide the format, the header decides the size, before decoding."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from service.errors import CorruptImage, ImageTooSmall, InvalidRequest, TooManyPixels, UnsupportedMediaType
from service.media import decode_image, encode_image, inspect_image, sniff_format
from tests.service.files import png_header_only


@pytest.mark.parametrize("name,fmt", [("small_png", "png"), ("small_jpeg", "jpeg"), ("small_webp", "webp")])
def test_sniff_and_inspect_real_files(photos, name, fmt):
    data = photos[name].read_bytes()
    assert sniff_format(data) == fmt
    info = inspect_image(data, max_pixels=10**7, min_side=16)
    with Image.open(photos[name]) as img:
        assert info.format == fmt and (info.width, info.height) == img.size


def test_format_comes_from_bytes_not_the_name(tmp_path):
    text = tmp_path / "photo.png"
    text.write_text("not an image")
    with pytest.raises(UnsupportedMediaType):
        inspect_image(text.read_bytes(), max_pixels=10**7)


def test_empty_body_is_invalid():
    with pytest.raises(InvalidRequest, match="no body"):
        inspect_image(b"", max_pixels=10**7)


def test_pixel_limit_is_read_from_the_header_before_decoding():
    bomb = png_header_only(100_000, 100_000)  # would need 30 GB decoded
    with pytest.raises(TooManyPixels):
        inspect_image(bomb, max_pixels=40_000_000)
    modest = png_header_only(4000, 3000)
    with pytest.raises(TooManyPixels) as exc:
        inspect_image(modest, max_pixels=10_000_000)
    assert exc.value.extensions["width"] == 4000


def test_too_small_and_truncated(photos):
    with pytest.raises(ImageTooSmall):
        inspect_image(photos["tiny_png"].read_bytes(), max_pixels=10**7, min_side=16)
    jpeg = photos["small_jpeg"].read_bytes()
    truncated = jpeg[: len(jpeg) // 2]
    inspect_image(truncated, max_pixels=10**7)  # the header alone is fine...
    with pytest.raises(CorruptImage):
        decode_image(truncated)  # ...the pixels are not


@pytest.mark.parametrize("fmt,pil_name", [("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")])
def test_encode_image_formats(photos, fmt, pil_name):
    with Image.open(photos["small_png"]) as img:
        image = img.convert("RGB")
    data = encode_image(image, fmt)
    assert Image.open(io.BytesIO(data)).format == pil_name
    with pytest.raises(ValueError, match="`fmt`"):
        encode_image(image, "gif")
