"""A model's measured quality comes from the evaluation recorded for exactly its weights, and it stays a preview
until it reaches the quality target."""

from __future__ import annotations

import json

import pytest

from model.quality import measured_quality


def write_history(folder, *evaluations):
    (folder / "training.json").write_text(json.dumps({"stages": [], "evaluations": list(evaluations)}))


def evaluation(model_id, psnr, ms_ssim, bicubic_psnr=23.0, bicubic_ms_ssim=0.7):
    return {"model_id": model_id, "set": "kodak", "methods": {
        "tadm-nano": {"images": 24, "psnr_y": psnr, "ms_ssim_y": ms_ssim},
        "tadm-nano-direct": {"images": 24, "psnr_y": 30.0, "ms_ssim_y": 0.99},
        "bicubic": {"images": 24, "psnr_y": bicubic_psnr, "ms_ssim_y": bicubic_ms_ssim}}}


@pytest.mark.parametrize(("scale", "psnr", "ms_ssim", "preview"), [
    (16, 23.5, 0.75, True),    # above bicubic, below bicubic + 1.5
    (16, 24.5, 0.75, False),   # at the 16x bar
    (16, 24.6, 0.69, True),    # PSNR reached, structure below bicubic
    (32, 24.0, 0.75, False),   # 32x asks for + 1.0 dB
])
def test_preview_until_the_bar(tmp_path, scale, psnr, ms_ssim, preview):
    write_history(tmp_path, evaluation("abc", psnr, ms_ssim))
    quality = measured_quality(tmp_path, "abc", scale)
    assert quality is not None and quality.preview is preview
    assert quality.psnr_y == psnr and quality.bicubic_psnr_y == 23.0 and quality.images == 24
    assert quality.summary().startswith("preview model:" if preview else "model:")
    assert f"{psnr:.2f} dB PSNR-Y on kodak (24 photos) against bicubic's 23.00 dB" in quality.summary()


def test_only_the_latest_evaluation_of_these_weights_counts(tmp_path):
    write_history(tmp_path, evaluation("abc", 23.2, 0.75), evaluation("abc", 23.4, 0.76), evaluation("old", 25, 0.9))
    assert measured_quality(tmp_path, "abc", 16).psnr_y == 23.4
    assert measured_quality(tmp_path, "other", 16) is None
    assert measured_quality(tmp_path / "missing", "abc", 16) is None
