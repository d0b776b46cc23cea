"""PSNR/SSIM on Y agree with scikit-image (an independent implementation) on known pairs."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from model.evaluation.metrics import ms_ssim, psnr, rgb_to_y, ssim, y_metrics


def degraded(photo: Image.Image, kind: str) -> np.ndarray:
    if kind == "bicubic":
        small = photo.resize((photo.width // 8, photo.height // 8), Image.Resampling.BICUBIC)
        return np.asarray(small.resize(photo.size, Image.Resampling.BICUBIC))
    if kind == "jpeg":
        buf = io.BytesIO()
        photo.save(buf, format="JPEG", quality=10)
        return np.asarray(Image.open(buf).convert("RGB"))
    noise = np.random.default_rng(0).normal(0, 12, (photo.height, photo.width, 3))
    return np.clip(np.asarray(photo) + noise, 0, 255).round().astype(np.uint8)


def test_luma_is_bt601_as_scikit_image(photo_array):
    np.testing.assert_allclose(rgb_to_y(photo_array), rgb2ycbcr(photo_array)[..., 0], atol=1e-9)


@pytest.mark.parametrize("kind", ["bicubic", "jpeg", "noise"])
def test_psnr_and_ssim_match_scikit_image(photo, photo_array, kind):
    test = degraded(photo, kind)
    ref_y, test_y = rgb2ycbcr(photo_array)[..., 0], rgb2ycbcr(test)[..., 0]
    expected_psnr = peak_signal_noise_ratio(ref_y, test_y, data_range=255)
    expected_ssim = structural_similarity(ref_y, test_y, data_range=255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
    ours = y_metrics(photo_array, test)
    assert ours["psnr_y"] == pytest.approx(expected_psnr, abs=1e-6)
    assert ours["ssim_y"] == pytest.approx(expected_ssim, abs=1e-6)
    assert 0 < ours["ms_ssim_y"] < 1


def test_identical_images_are_perfect(photo_array):
    y = rgb_to_y(photo_array)
    assert math.isinf(psnr(y, y))
    assert ssim(y, y) == pytest.approx(1.0)
    assert ms_ssim(y, y) == pytest.approx(1.0)


def test_ms_ssim_orders_degradations(photo, photo_array):
    ref = rgb_to_y(photo_array)
    mild = rgb_to_y(np.clip(photo_array + np.random.default_rng(1).normal(0, 3, photo_array.shape), 0, 255))
    strong = rgb_to_y(degraded(photo, "bicubic"))
    assert 1 > ms_ssim(ref, mild) > ms_ssim(ref, strong) > 0


def test_ms_ssim_of_a_too_small_image_is_reported_absent(photo_array):
    small = photo_array[:100, :100]
    assert math.isnan(y_metrics(small, small)["ms_ssim_y"])
    with pytest.raises(ValueError, match="176"):
        ms_ssim(rgb_to_y(small), rgb_to_y(small))


def test_shape_mismatch_is_an_error(photo_array):
    with pytest.raises(ValueError, match="differ in shape"):
        y_metrics(photo_array, photo_array[:-1])


def test_worst_local_deviation_finds_a_blotch_a_mean_hides():
    from model.evaluation.metrics import worst_local_deviation

    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    test = reference.copy()
    assert worst_local_deviation(reference, test) == 0.0
    test[10:14, 20:24, 1] = np.clip(test[10:14, 20:24, 1].astype(int) + 90, 0, 255)  # a green 4x4 blotch
    expected = np.abs(test[10:14, 20:24].astype(float) - reference[10:14, 20:24]).mean()
    assert worst_local_deviation(reference, test) == pytest.approx(expected)
    assert worst_local_deviation(reference, test, window=8) < expected  # spread over a larger block
    assert np.abs(test.astype(float) - reference).mean() < expected / 50  # what a mean over the image sees
    tiny = reference[:2, :3]
    assert worst_local_deviation(tiny, tiny // 2) == pytest.approx(np.abs(tiny - tiny // 2.0).mean())
