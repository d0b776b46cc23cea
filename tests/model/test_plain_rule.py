"""The sender's plain rule (model.plain_rule): photos bicubic already gives back nearly exactly get the plain
thumbnail from TADMPipeline.downscale, every other photo the learned one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from PIL import Image

from model import TADMPipeline
from model.evaluation import baselines
from model.evaluation.evaluate import PLAIN_BY_RULE, Row, bounded_reconstruction, model_reconstruction
from model.evaluation.metrics import psnr, rgb_to_y
from model.evaluation.per_photo import against_reference, verified
from model.plain_rule import RULE_NAME, PlainRule, bicubic_psnr_y, load_plain_rule
from model.thumbnail import plain_upscale


@pytest.fixture(scope="module")
def photos(kodak_dir) -> dict[str, Image.Image]:
    """A textured Kodak photo as it is, and one out of focus: brought down to its 16x thumbnail's size and back, so
    that bicubic from a 16x thumbnail gives it back nearly exactly."""
    sharp = Image.open(kodak_dir / "kodak__kodim23.png").convert("RGB")
    blurred = sharp.resize((48, 32), Image.Resampling.BOX).resize(sharp.size, Image.Resampling.BICUBIC)
    return {"sharp": sharp, "blurred": blurred}


@pytest.fixture
def ruled_pipe(tiny_pipe) -> TADMPipeline:
    pipe = copy.copy(tiny_pipe)
    pipe.plain_rule = PlainRule(40.0, "a test threshold")
    return pipe


def test_bicubic_psnr_y_is_the_evaluations_bicubic_figure(photos):
    image = photos["sharp"]
    reference = baselines.bicubic(image, 16).image
    expected = psnr(rgb_to_y(np.asarray(image)), rgb_to_y(np.asarray(reference)))
    assert bicubic_psnr_y(np.asarray(image), 16) == pytest.approx(expected, abs=1e-9)
    assert expected < 30 < 40 < bicubic_psnr_y(np.asarray(photos["blurred"]), 16)


def test_the_rule_makes_only_the_smooth_photo_plain(ruled_pipe, photos):
    smooth = ruled_pipe.downscale(photos["blurred"])
    assert smooth.plain and smooth.model_id is None and smooth.image.size == (48, 32)
    # reconstructed as it was made: bicubic, no model
    assert np.array_equal(np.asarray(ruled_pipe.upscale(smooth)), np.asarray(plain_upscale(smooth)))
    assert np.array_equal(np.asarray(ruled_pipe.upscale_direct(smooth)), np.asarray(plain_upscale(smooth)))
    textured = ruled_pipe.downscale(photos["sharp"])
    assert not textured.plain and textured.model_id == ruled_pipe.model_id


def test_learned_asks_for_the_rescalers_thumbnail_whatever_the_rule(ruled_pipe, tiny_pipe, photos):
    learned = ruled_pipe.downscale(photos["blurred"], learned=True)
    assert not learned.plain
    assert learned.to_png() == tiny_pipe.downscale(photos["blurred"]).to_png()


def test_the_rule_is_saved_with_the_model_and_leaves_its_id(tmp_path, ruled_pipe, tiny_pipe, photos):
    ruled_pipe.save_pretrained(tmp_path / "m")
    loaded = TADMPipeline.from_pretrained(tmp_path / "m")
    assert loaded.plain_rule == ruled_pipe.plain_rule
    assert loaded.model_id == tiny_pipe.model_id  # thumbnails stored before the rule still decode
    assert loaded.downscale(photos["blurred"]).plain
    (tmp_path / "m" / RULE_NAME).unlink()
    assert TADMPipeline.from_pretrained(tmp_path / "m").plain_rule is None


def test_a_malformed_rule_names_its_file(tmp_path):
    (tmp_path / RULE_NAME).write_text('{"min_bicubic_psnr_y": "high"}')
    with pytest.raises(ValueError, match=RULE_NAME):
        load_plain_rule(tmp_path)
    (tmp_path / RULE_NAME).write_text('{"min_bicubic_psnr_y": 400}')
    with pytest.raises(ValueError, match="between 0 and 100"):
        load_plain_rule(tmp_path)


def test_evaluation_marks_and_counts_the_photos_the_rule_made_plain(ruled_pipe, photos):
    rows = []
    for name, image in photos.items():
        made = model_reconstruction(ruled_pipe, image)
        bounded = bounded_reconstruction(ruled_pipe, image, made, 48.0)
        for rec in (made, bounded, baselines.bicubic(image, 16)):
            scores = {"psnr_y": psnr(rgb_to_y(np.asarray(image)), rgb_to_y(np.asarray(rec.image)))}
            rows.append(Row(name, rec.method, 16, rec.stored_bytes, image.width * image.height, scores, rec.detail,
                            image.size))
    by_key = {(r.image, r.method): r for r in rows}
    plain = by_key["blurred", "tadm-tiny"]
    assert plain.detail.startswith(PLAIN_BY_RULE) and plain.scores == by_key["blurred", "bicubic"].scores
    assert by_key["blurred", "tadm-tiny-bounded"].scores == plain.scores
    assert not by_key["sharp", "tadm-tiny"].detail.startswith(PLAIN_BY_RULE)
    summary = against_reference(rows, "tadm-tiny")
    assert summary is not None and summary["plain_by_rule"] == ["blurred"]
    stored = verified(rows, "tadm-tiny")
    assert stored is not None and stored["plain_by_rule"] == ["blurred"] and "blurred" not in stored["fallback_photos"]
