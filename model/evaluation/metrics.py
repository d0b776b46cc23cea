"""Full-reference metrics as the super-resolution literature computes them.

* PSNR and SSIM on the Y channel of YCbCr (ITU-R BT.601, studio range 16..235, as MATLAB's ``rgb2ycbcr``),
  no border crop, data range 255.
* SSIM: Wang et al. 2004, an 11-tap Gaussian window with sigma 1.5, K1 0.01, K2 0.03, the mean over the
  positions where the window fits entirely (no padding).
* MS-SSIM: Wang et al. 2003, five scales with the published weights, 2x2 average pooling between scales,
  on the same Y channel. Negative contrast-structure terms are clipped to zero so that the weighted product
  stays real.
* SSIMULACRA 2 (``image_quality`` only): the perceptual metric of libjxl on the full RGB image, as
  documented in ``model.evaluation.ssimulacra2``.

Inputs are uint8 RGB arrays (H, W, 3); all arithmetic here is float64.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

from model.evaluation.ssimulacra2 import ssimulacra2

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DATA_RANGE = 255.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> BT.601 luma Y in [16, 235] as float64 (H, W)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"`rgb` must have shape (H, W, 3) but has {rgb.shape}")
    r, g, b = (rgb[..., i].astype(np.float64) / 255.0 for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"images differ in shape: reference {reference.shape}, test {test.shape}")


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """PSNR in dB between two arrays of the same shape; ``inf`` for identical inputs."""
    _check_pair(reference, test)
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def _gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation keeping only the positions where the whole window lies inside the image."""
    out = correlate1d(correlate1d(image, taps, axis=0, mode="constant"), taps, axis=1, mode="constant")
    r = len(taps) // 2
    return out[r:-r, r:-r]


def _ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """The luminance and contrast-structure maps of SSIM over the valid positions."""
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} for SSIM but are {x.shape}")
    taps = _gaussian_taps()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x**2
    var_y = _filter_valid(y * y, taps) - mu_y**2
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    return luminance, contrast_structure


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """SSIM of two single-channel images (H, W), Gaussian window, no padding."""
    _check_pair(reference, test)
    luminance, cs = _ssim_terms(reference.astype(np.float64), test.astype(np.float64), data_range)
    return float(np.mean(luminance * cs))


def _avg_pool2(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ms_ssim(reference: np.ndarray, test: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Five-scale MS-SSIM of two single-channel images; the smaller side must be at least 11·2⁴ = 176 px."""
    _check_pair(reference, test)
    need = SSIM_WINDOW * 2 ** (len(MS_SSIM_WEIGHTS) - 1)
    if min(reference.shape) < need:
        raise ValueError(f"images must be at least {need}x{need} for MS-SSIM but are {reference.shape}")
    x, y = reference.astype(np.float64), test.astype(np.float64)
    value = 1.0
    for level, weight in enumerate(MS_SSIM_WEIGHTS):
        luminance, cs = _ssim_terms(x, y, data_range)
        last = level == len(MS_SSIM_WEIGHTS) - 1
        term = float(np.mean(luminance * cs)) if last else float(np.mean(cs))
        value *= max(term, 0.0) ** weight
        if not last:
            x, y = _avg_pool2(x), _avg_pool2(y)
    return value


def y_metrics(reference_rgb: np.ndarray, test_rgb: np.ndarray) -> dict[str, float]:
    """PSNR-Y, SSIM-Y and (where the image is large enough) MS-SSIM-Y of two uint8 RGB images."""
    _check_pair(reference_rgb, test_rgb)
    ref_y, test_y = rgb_to_y(reference_rgb), rgb_to_y(test_rgb)
    result = {"psnr_y": psnr(ref_y, test_y), "ssim_y": ssim(ref_y, test_y)}
    try:
        result["ms_ssim_y"] = ms_ssim(ref_y, test_y)
    except ValueError:
        result["ms_ssim_y"] = float("nan")  # too small for five scales: reported as absent, not guessed
    return result


def image_quality(reference_rgb: np.ndarray, test_rgb: np.ndarray) -> dict[str, float]:
    """PSNR-Y, MS-SSIM-Y (NaN where the image is too small) and SSIMULACRA 2 of two uint8 RGB images."""
    _check_pair(reference_rgb, test_rgb)
    ref_y, test_y = rgb_to_y(reference_rgb), rgb_to_y(test_rgb)
    try:
        ms = ms_ssim(ref_y, test_y)
    except ValueError:
        ms = float("nan")  # too small for five scales: reported as absent, as in y_metrics
    return {"psnr_y": psnr(ref_y, test_y), "ms_ssim_y": ms, "ssimulacra2": ssimulacra2(reference_rgb, test_rgb)}


DEVIATION_WINDOW = 4  # thumbnail pixels: 64 px of the original at 16x, 128 px at 32x


def worst_local_deviation(reference_rgb: np.ndarray, test_rgb: np.ndarray, window: int = DEVIATION_WINDOW) -> float:
    """The largest mean absolute difference, in 8-bit levels over the three channels, of any ``window`` x
    ``window`` block of two uint8 RGB images (the whole image when smaller).

    How far a learned thumbnail strays, at its worst place, from the bicubic thumbnail of the same photo: a
    colour blotch over a dark or flat area is local, so a mean over the image (thumbnail PSNR) hides it."""
    return float(block_deviations(reference_rgb, test_rgb, window).max())


def block_deviations(reference_rgb: np.ndarray, test_rgb: np.ndarray, window: int = DEVIATION_WINDOW) -> np.ndarray:
    """The mean absolute difference (8-bit levels, three channels) of every ``window`` x ``window`` block of two
    uint8 RGB images, indexed by the block's top-left pixel: shape (H - kh + 1, W - kw + 1), where the block is
    kh x kw (``window``, or the image's side where it is smaller)."""
    _check_pair(reference_rgb, test_rgb)
    diff = np.abs(reference_rgb.astype(np.float64) - test_rgb.astype(np.float64)).mean(axis=2)
    h, w = diff.shape
    kh, kw = min(window, h), min(window, w)
    # Box sums from an integral image: every kh x kw block at once.
    integral = np.pad(diff.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    sums = integral[kh:, kw:] - integral[:-kh, kw:] - integral[kh:, :-kw] + integral[:-kh, :-kw]
    return sums / (kh * kw)
