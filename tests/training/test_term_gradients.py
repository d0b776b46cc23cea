"""Per-term gradients of a stage's loss, per module: stage 3's LR-guidance and latent terms reach the DFRM alone
(they are computed before the UNet), the image term reaches every trained module."""

from __future__ import annotations

import random

import pytest

from model.pipeline import TADMPipeline
from model.training.term_gradients import main, random_crop, term_gradients


def test_each_term_reaches_the_modules_it_depends_on(photo_folder):
    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    crop = random_crop(next(photo_folder.iterdir()), 64, random.Random(0))
    assert tuple(crop.shape) == (1, 3, 64, 64) and float(crop.min()) >= -1 and float(crop.max()) <= 1
    report = term_gradients(pipe, "stage3", [crop])
    assert set(report) == {"dfrm", "unet", "tpm", "refiner", "vae"}
    for module, per_term in report.items():
        assert per_term["mse"]["norm"] > 0 and per_term["mse"]["cosine"] == pytest.approx(1.0)
        for term in ("lr_guidance", "latent", "lr_worst"):  # lr_worst is off (weight 0): reported at weight 1
            assert (per_term[term]["norm"] > 0) == (module == "dfrm"), (module, term)
    assert -1 <= report["dfrm"]["latent"]["cosine"] <= 1


def test_the_command_prints_a_row_per_module(tmp_path, photo_folder, capsys):
    TADMPipeline.from_preset("tiny", scale=16, pretrained=False).save_pretrained(tmp_path / "tiny")
    assert main([str(tmp_path / "tiny"), "--data", str(photo_folder), "--crops", "1", "--crop-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "dfrm" in out and "lr_guidance |g|" in out and "cos +1.00" in out
