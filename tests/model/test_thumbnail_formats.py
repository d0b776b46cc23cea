"""Thumbnails in each lossless format (PNG, WebP, JPEG XL): bit-exact round trips with the metadata in the
format's own chunk, the same bytes for the same thumbnail, lossy files refused before decoding, and the sizes
that make WebP and JPEG XL worth storing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from model.jxl_codestream import split_container
from model.thumbnail import (
    LossyThumbnailError,
    Thumbnail,
    ThumbnailError,
    plain_thumbnail,
    thumbnail_size,
)
from model.thumbnail_formats import FORMATS, IMAGE_DESCRIPTION, FormatError, decode, jxl_available

NANO_16X = "model/weights/nano-16x"
LOSSY_MESSAGE = "lossy formats destroy what the rescaler hid in the thumbnail"
needs_jxl = pytest.mark.skipif(not jxl_available(), reason="pillow-jxl-plugin is not installed")
formats = [pytest.param(f, marks=needs_jxl) if f == "jxl" else f for f in FORMATS]


@pytest.fixture(scope="module")
def photo_thumbnail(kodak_image) -> Thumbnail:
    """The plain (bicubic) thumbnail of a Kodak photo, with the photo's own info (its profile, if any) on it."""
    with Image.open(kodak_image) as img:
        return plain_thumbnail(img.convert("RGB"), 16)


def noise_thumbnail(model_id: str | None = "abc123") -> Thumbnail:
    size = (1000, 700)
    w, h = thumbnail_size(size, 16)
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Thumbnail(Image.fromarray(pixels), 16, size, model_id)


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", formats)
def test_a_round_trip_gives_back_every_pixel_and_the_metadata(fmt, photo_thumbnail):
    for thumb in (photo_thumbnail, noise_thumbnail()):
        back = Thumbnail.from_bytes(thumb.to_bytes(fmt))
        assert back.image.tobytes() == thumb.image.tobytes()
        assert (back.metadata, back.method) == (thumb.metadata, thumb.method)


@pytest.mark.parametrize("fmt", formats)
def test_the_same_thumbnail_always_gives_the_same_bytes(fmt, photo_thumbnail):
    data = photo_thumbnail.to_bytes(fmt)
    assert photo_thumbnail.to_bytes(fmt) == data
    # The pixels alone decide: a colour profile or EXIF the photo brought along is not written.
    dressed = Image.frombytes("RGB", photo_thumbnail.image.size, photo_thumbnail.image.tobytes())
    dressed.info.update(icc_profile=b"not a real profile", exif=b"Exif\0\0II*\0")
    again = Thumbnail(dressed, photo_thumbnail.scale, photo_thumbnail.original_size, None, "plain")
    assert again.to_bytes(fmt) == data


@pytest.mark.parametrize("fmt", formats)
def test_the_metadata_is_in_the_formats_own_chunk(fmt):
    thumb = noise_thumbnail()
    expected = json.dumps(thumb.metadata, separators=(",", ":"))
    with Image.open(io.BytesIO(thumb.to_bytes(fmt))) as img:  # read back by Pillow, not by our parser
        found = img.info["tadm"] if fmt == "png" else img.getexif()[IMAGE_DESCRIPTION]
    assert found == expected


@needs_jxl
def test_the_jpeg_xl_exif_box_starts_with_its_tiff_offset():
    data = noise_thumbnail().to_bytes("jxl")
    box = data[data.index(b"Exif") + 4:]
    assert box[:4] == b"\0\0\0\0" and box[4:8] == b"MM\0*"  # ISO/IEC 18181-2: offset, then the TIFF header
    assert split_container(data).exif.startswith(b"MM\0*")


def test_a_lossy_webp_is_refused(photo_thumbnail):
    lossy = saved(photo_thumbnail.image, "WEBP", quality=90)
    assert lossy[12:16] == b"VP8 "
    with pytest.raises(LossyThumbnailError, match=LOSSY_MESSAGE):
        Thumbnail.from_bytes(lossy, scale=16, original_size=photo_thumbnail.original_size)


@needs_jxl
@pytest.mark.parametrize("options, why", [
    ({"quality": 90}, "XYB"),  # libjxl's default lossy mode
    ({"quality": 98, "use_original_profile": True}, "VarDCT"),  # lossy without XYB
])
def test_a_lossy_jpeg_xl_is_refused(photo_thumbnail, options, why):
    lossy = saved(photo_thumbnail.image, "JXL", **options)
    with pytest.raises(LossyThumbnailError, match=f"(?s){why}.*{LOSSY_MESSAGE}"):
        Thumbnail.from_bytes(lossy, scale=16, original_size=photo_thumbnail.original_size)


@needs_jxl
def test_lossless_files_of_other_encoders_settings_are_read(photo_thumbnail):
    size = photo_thumbnail.original_size
    for data in (saved(photo_thumbnail.image, "JXL", lossless=True, effort=1),
                 saved(photo_thumbnail.image, "JXL", quality=100, use_original_profile=True),
                 saved(photo_thumbnail.image, "WEBP", lossless=True, quality=0, method=0)):
        back = Thumbnail.from_bytes(data, scale=16, original_size=size)  # no metadata: given instead
        assert back.image.tobytes() == photo_thumbnail.image.tobytes() and back.model_id is None


@pytest.mark.parametrize("fmt", [f for f in formats if f != "png"])
def test_a_file_without_metadata_needs_scale_and_size(fmt, photo_thumbnail):
    bare = saved(photo_thumbnail.image, fmt.upper(), lossless=True)
    with pytest.raises(ThumbnailError, match="no `tadm` metadata"):
        Thumbnail.from_bytes(bare)


@needs_jxl
def test_a_jpeg_xl_too_large_is_refused_before_it_is_decoded():
    data = noise_thumbnail().to_bytes("jxl")
    with pytest.raises(FormatError, match="63x44 exceeds 100 pixels"):
        decode(data, max_pixels=100)


@pytest.mark.parametrize("data, message", [
    (b"RIFF\x10\x00\x00\x00WEBPVP8L", "truncated"),
    (b"RIFF\x0c\x00\x00\x00WEBPVP8L\x00\x00", "truncated"),
    (b"\xff\x0a\x00", "truncated"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n\x00\x00\x00\x08jxlc", "no codestream"),
    (b"GIF89a", "PNG, lossless WebP or lossless JPEG XL"),
])
def test_broken_files_are_refused(data, message):
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL")) and not jxl_available():
        pytest.skip("pillow-jxl-plugin is not installed")
    with pytest.raises(ThumbnailError, match=message):
        Thumbnail.from_bytes(data)


def test_from_png_still_reads_png_only():
    with pytest.raises(ThumbnailError, match="must be a PNG"):
        Thumbnail.from_png(noise_thumbnail().to_bytes("webp"))


@pytest.fixture(scope="module")
def learned_thumbnails(kodak_dir) -> list[Thumbnail]:
    from model import TADMPipeline

    pipe = TADMPipeline.from_pretrained(NANO_16X, device="cpu")
    thumbs = []
    for name in ("kodak__kodim03.png", "kodak__kodim13.png"):
        with Image.open(kodak_dir / name) as img:
            thumbs.append(pipe.downscale(img.convert("RGB")))
    return thumbs


def test_webp_and_jpeg_xl_store_learned_thumbnails_in_fewer_bytes(learned_thumbnails):
    size = {fmt: sum(len(t.to_bytes(fmt)) for t in learned_thumbnails) for fmt in FORMATS if fmt != "jxl"
            or jxl_available()}
    assert size["webp"] < 0.95 * size["png"], size
    if "jxl" in size:
        assert size["jxl"] < size["webp"], size
