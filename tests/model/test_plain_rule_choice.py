"""Choosing a model's plain rule on its collected training photos (model.training.plain_rule_choice)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from model import TADMPipeline
from model.plain_rule import RULE_NAME, PlainRule
from model.training import consistency as collecting
from model.training import plain_rule_choice as choice
from model.training.data import find_images


def _photos(*pairs: tuple[float, float]) -> list[choice.Scored]:
    return [choice.Scored(f"p{i}", bicubic, bicubic + gain) for i, (bicubic, gain) in enumerate(pairs)]


def test_the_cut_that_maximises_the_mean_is_chosen_midway_between_two_photos():
    photos = _photos((50, -10), (45, -2), (40, +1), (38, -0.5), (35, +3), (30, +2))
    chosen = choice.choose(photos)
    # running sums from the top: -10, -12, -11, -11.5, -8.5, -6.5: lowest after the second photo
    assert chosen.threshold == pytest.approx(42.5)
    assert [p.name for p in chosen.plain] == ["p0", "p1"]
    assert chosen.mean_gain(False) == pytest.approx(-6.5 / 6) and chosen.mean_gain(True) == pytest.approx(5.5 / 6)
    described = choice.describe(chosen)
    assert "on 6 collected training photos (bicubic gives them back at 30.00 to 50.00 dB)" in described
    assert "2 made plain" in described and "worst photo kept -0.50 dB (p3)" in described


def test_no_rule_where_no_run_from_the_top_loses():
    chosen = choice.choose(_photos((50, +0.2), (45, -0.1), (40, +1)))
    assert chosen.threshold is None and not chosen.plain


@pytest.fixture
def cache(tiny_pipe, kodak_dir, tmp_path):
    """Two photos collected through a tiny model that carries a rule: a sharp Kodak photo and one out of focus."""
    photos = tmp_path / "photos"
    photos.mkdir()
    sharp = Image.open(kodak_dir / "kodak__kodim23.png").convert("RGB").crop((0, 0, 256, 192))
    sharp.save(photos / "sharp.png")
    sharp.resize((16, 12), Image.Resampling.BOX).resize(sharp.size, Image.Resampling.BICUBIC).save(photos / "soft.png")
    ruled = copy.copy(tiny_pipe)
    ruled.plain_rule = PlainRule(30.0)
    collecting.collect(ruled, find_images([photos]), tmp_path / "cache", log=lambda _: None)
    return tmp_path / "cache"


def test_collecting_keeps_the_learned_thumbnail_where_the_rule_would_make_it_plain(cache, tiny_pipe):
    original = Image.open(cache / "soft" / "original.png")
    learned = tiny_pipe.downscale(original, learned=True).image
    assert np.array_equal(np.asarray(Image.open(cache / "soft" / "thumbnail.png")), np.asarray(learned))


def test_the_command_writes_the_rule_into_the_model(cache, tiny_pipe, tmp_path, capsys):
    model = tmp_path / "model"
    tiny_pipe.save_pretrained(model)
    assert choice.main(["--cache", str(cache), "--model", str(model), "--write"]) == 0
    out = capsys.readouterr().out
    assert "| soft |" in out and "| sharp |" in out
    # random weights lose to bicubic on both photos: the cut takes both, at the lower one's bicubic figure
    record = json.loads((model / RULE_NAME).read_text())
    loaded = TADMPipeline.from_pretrained(model)
    assert loaded.plain_rule is not None and loaded.plain_rule.min_bicubic_psnr_y == record["min_bicubic_psnr_y"]
    assert "2 made plain" in record["chosen"]
    sharp = Image.open(cache / "sharp" / "original.png")
    assert loaded.downscale(sharp).plain


def test_collect_can_keep_only_the_photos_bicubic_already_gives_back_well(tiny_pipe, kodak_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    sharp = Image.open(kodak_dir / "kodak__kodim23.png").convert("RGB").crop((0, 0, 256, 192))
    sharp.save(photos / "sharp.png")
    sharp.resize((16, 12), Image.Resampling.BOX).resize(sharp.size, Image.Resampling.BICUBIC).save(photos / "soft.png")
    tiny_pipe.save_pretrained(tmp_path / "model")
    assert collecting.main(["collect", "--model", str(tmp_path / "model"), "--data", str(photos),
                            "--min-bicubic-psnr-y", "40", "-o", str(tmp_path / "cache")]) == 0
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["soft"]
    assert "1 photos that bicubic gives back at 40 dB PSNR-Y or more" in capsys.readouterr().out
