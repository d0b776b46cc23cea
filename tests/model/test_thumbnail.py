from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from model.thumbnail import Thumbnail, ThumbnailError, ThumbnailMismatchError, thumbnail_size


def make_thumb(model_id: str | None = "abc123", scale: int = 16, size=(1000, 700)) -> Thumbnail:
    rng = np.random.default_rng(0)
    w, h = thumbnail_size(size, scale)
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Thumbnail(Image.fromarray(pixels), scale, size, model_id)


def test_png_round_trip_keeps_pixels_and_metadata_exactly():
    thumb = make_thumb()
    back = Thumbnail.from_png(thumb.to_png())
    assert np.array_equal(np.asarray(back.image), np.asarray(thumb.image))
    assert (back.scale, back.original_size, back.model_id) == (16, (1000, 700), "abc123")
    assert back.image.size == (63, 44)


def test_a_plain_png_needs_scale_and_size():
    thumb = make_thumb()
    buf = io.BytesIO()
    thumb.image.save(buf, format="PNG")
    with pytest.raises(ThumbnailError, match="no `tadm` metadata"):
        Thumbnail.from_png(buf.getvalue())
    bare = Thumbnail.from_png(buf.getvalue(), scale=16, original_size=(1000, 700))
    assert bare.model_id is None
    bare.check_compatible("any-model", 16)  # no id to contradict


def test_mismatches_name_both_sides():
    thumb = make_thumb(model_id="aaaa")
    with pytest.raises(ThumbnailMismatchError, match="aaaa.*bbbb"):
        thumb.check_compatible("bbbb", 16)
    with pytest.raises(ThumbnailMismatchError, match="16x.*32x"):
        thumb.check_compatible("aaaa", 32)
    with pytest.raises(ThumbnailMismatchError):
        Thumbnail.from_png(thumb.to_png(), scale=32)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "must be a PNG"),
        (b"\xff\xd8\xff\xe0 jpeg", "must be a PNG"),
        (b"\x89PNG\r\n\x1a\n truncated", "cannot be decoded"),
    ],
)
def test_bad_files(data, message):
    with pytest.raises(ThumbnailError, match=message):
        Thumbnail.from_png(data)


def test_size_must_match_the_metadata():
    with pytest.raises(ThumbnailError, match="needs 63x44"):
        Thumbnail(Image.new("RGB", (10, 10)), 16, (1000, 700), None)


def test_imports_without_torch():
    code = "import sys, model; from model import Thumbnail; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
