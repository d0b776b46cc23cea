"""Codecs at equal bytes: the highest quality that fits, or the lowest with its real size; thumbnails scored."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from model.evaluation import baselines, codecs


@pytest.mark.parametrize("codec", ["jpeg", "webp", "avif"])
def test_highest_quality_within_the_budget(photo, codec):
    if not codecs.codec_available(codec):
        pytest.skip(f"this Pillow has no {codec} encoder")
    budget = len(codecs.encode(photo, codec, 40))  # a budget that some middle quality meets exactly
    result = codecs.encode_within(photo, codec, budget)
    assert result.within_budget and result.size <= budget
    _, _, high, _ = codecs.CODECS[codec]
    if result.quality < high:
        assert len(codecs.encode(photo, codec, result.quality + 1)) > budget  # one step up does not fit
    assert codecs.decode(result.data).size == photo.size


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_an_impossible_budget_uses_the_lowest_quality_and_says_so(photo, codec):
    result = codecs.encode_within(photo, codec, 50)
    assert not result.within_budget
    assert result.quality == codecs.CODECS[codec][1]
    assert result.size > 50  # the real size is reported, not the budget


def test_bicubic_stores_the_thumbnail_png(photo):
    rec = baselines.bicubic(photo, 16)
    assert rec.image.size == photo.size
    thumb = baselines.bicubic_thumbnail(photo, 16)
    assert thumb.size == (16, 12)  # ceil(256/16) x ceil(192/16)
    assert rec.stored_bytes == len(baselines.png_bytes(thumb))
    with Image.open(io.BytesIO(baselines.png_bytes(thumb))) as decoded:
        assert decoded.size == (16, 12)


def test_codecs_get_the_bicubic_budget(photo):
    recs = {r.method: r for r in baselines.run_baselines(photo, 16, ("bicubic", "webp"))}
    assert set(recs) == {"bicubic", "webp"}
    webp = codecs.encode_within(photo, "webp", recs["bicubic"].stored_bytes)
    assert recs["webp"].stored_bytes == webp.size


def test_unknown_baseline_is_refused(photo):
    with pytest.raises(ValueError, match="unknown baselines"):
        baselines.run_baselines(photo, 16, ("gif",))


def test_a_thumbnail_is_scored_against_the_bicubic_one(photo):
    from model.evaluation.evaluate import thumbnail_scores

    # Darkened so that the bicubic thumbnail (which can overshoot a little) stays below 255 - 4 everywhere.
    image = Image.fromarray((np.asarray(photo) * 0.9).astype(np.uint8))
    reference = np.asarray(baselines.bicubic_thumbnail(image, 16))
    assert reference.max() <= 251
    shifted = Image.fromarray(reference + 4)  # every channel 4 levels off: PSNR 20·log10(255/4)
    assert thumbnail_scores(reference, shifted)["thumbnail_psnr"] == pytest.approx(20 * math.log10(255 / 4))
    assert thumbnail_scores(reference, Image.fromarray(reference))["thumbnail_psnr"] == math.inf
    assert math.isnan(thumbnail_scores(reference, None)["thumbnail_psnr"])
