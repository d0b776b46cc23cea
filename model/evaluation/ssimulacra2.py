"""SSIMULACRA 2, the perceptual full-reference metric of libjxl (Jon Sneyers, 2022, weights of April 2023).

Scores are at most 100 (identical images); about 90 is visually lossless, 70 high quality, 50 medium,
30 low, and very strong distortion goes negative. What is computed, following ``tools/ssimulacra2.cc``:

* Both uint8 sRGB images are decoded to linear RGB with the exact sRGB transfer function.
* Six scales (1:1 to 1:32). Each coarser scale is a 2x2 box average of the previous one in LINEAR RGB;
  an odd last row or column is averaged with itself (edge replication), so sides round up. Scales whose
  smaller side is below 8 pixels are skipped, as the reference does.
* At every scale the linear RGB is converted to XYB: the opsin absorbance matrix plus a bias of
  0.0037930732552754493, negative values clamped to zero, cube root minus the cube root of the bias,
  X = (L - M) / 2, Y = (L + M) / 2, B = S; then made positive as ssimulacra2 does:
  X' = 14 X + 0.42, Y' = Y + 0.01, B' = B - Y + 0.55.
* Per scale and channel three error maps, each pooled with the 1-norm (mean) and the 4-norm:
  - SSIM error without the luminance gamma term: 1 - (1 - (mu1 - mu2)^2) * (2 s12 + C2) / (s11 + s22 + C2),
    clipped at 0, with C2 = 0.0009 and mu, s from the blurred images and products;
  - artifacts (ringing, blocking): max(0, d) and detail loss (blur, smearing): max(0, -d), where
    d = (1 + |dist - blur(dist)|) / (1 + |ref - blur(ref)|) - 1.
* The 108 pooled values (3 channels x 6 scales x 2 norms x 3 maps) are weighted with the published weights,
  scaled by 0.9562382616834844, passed through the published cubic, and mapped to 100 - 10 s^0.6276...

Blur: the reference uses a recursive (IIR) approximation of a Gaussian of sigma 1.5 (Charalampidis' sum of
three cosines), whose impulse response spans 9 taps (-4..4). Here the blur is a sampled Gaussian of sigma 1.5
truncated to the same 9 taps and normalised; each tap differs from the recursive filter's by less than 0.002.
Both treat pixels outside the image as zero (no renormalisation near the borders), so the image borders are
weighted as in the reference.

Maps are float32 as in the reference; the pooled sums of each band of rows are added up in float64.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

NUM_SCALES = 6
MIN_SIDE = 8
BLUR_SIGMA = 1.5
BLUR_RADIUS = 4  # the support of the reference's recursive Gaussian at sigma 1.5
SSIM_C2 = 0.0009
BAND_PIXELS = 16384  # pixels per channel in one band of work: 3 channels of float32 make 192 KiB

# Each row of the opsin absorbance matrix sums to 1 (the reference defines the last entry as the remainder).
OPSIN_ABSORBANCE = np.array(
    [
        [0.30, 1.0 - 0.30 - 0.078, 0.078],
        [0.23, 1.0 - 0.23 - 0.078, 0.078],
        [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
    ]
)
OPSIN_BIAS = 0.0037930732552754493

# Published weights, indexed [channel X/Y/B][scale 1:1..1:32][1-norm, 4-norm][ssim, artifact, detail loss].
WEIGHTS = np.array(
    [
        [  # X
            ((0.0, 0.0007376606707406586, 0.0), (0.0, 0.0007793481682867309, 0.0)),
            ((0.0, 0.0004371155730107379, 0.0), (1.1041726426657346, 0.00066284834129271, 0.00015231632783718752)),
            ((0.0, 0.0016406437456599754, 0.0), (1.8422455520539298, 11.441172603757666, 0.0)),
            ((0.0007989109436015163, 0.000176816438078653, 0.0), (1.8787594979546387, 10.94906990605142, 0.0)),
            ((0.0007289346991508072, 0.9677937080626833, 0.0),
             (0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053)),
            ((0.0004550992113792063, 0.0, 0.0), (0.0013648766163243398, 0.0, 0.0)),
        ],
        [  # Y
            ((0.0, 0.0, 0.0), (7.466890328078848, 0.0, 17.445833984131262)),
            ((0.0006235601634041466, 0.0, 0.0), (6.683678146179332, 0.00037724407979611296, 1.027889937768264)),
            ((225.20515300849274, 0.0, 0.0), (19.213238186143016, 0.0011401524586618361, 0.001237755635509985)),
            ((176.39317598450694, 0.0, 0.0), (24.43300999870476, 0.28520802612117757, 0.0004485436923833408)),
            ((0.0, 0.0, 0.0), (34.77906344483772, 44.835625328877896, 0.0)),
            ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ],
        [  # B
            ((0.0, 0.0008680556573291698, 0.0), (0.0, 0.0, 0.0)),
            ((0.0, 0.0005313191874358747, 0.0), (0.00016533814161379112, 0.0, 0.0)),
            ((0.0, 0.0, 0.0), (0.0004179171803251336, 0.0017290828234722833, 0.0)),
            ((0.0020827005846636437, 0.0, 0.0), (8.826982764996862, 23.19243343998926, 0.0)),
            ((95.1080498811086, 0.9863978034400682, 0.9834382792465353),
             (0.0012286405048278493, 171.2667255897307, 0.9807858872435379)),
            ((0.0, 0.0, 0.0), (0.0005130064588990679, 0.0, 0.00010854057858411537)),
        ],
    ]
)
SCORE_SCALE = 0.9562382616834844
SCORE_CUBIC = (2.326765642916932, -0.020884521182843837, 6.248496625763138e-05)
SCORE_EXPONENT = 0.6276336467831387


def _srgb_lut() -> np.ndarray:
    encoded = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    return linear.astype(np.float32)


SRGB_TO_LINEAR = _srgb_lut()


def _blur_taps() -> np.ndarray:
    offsets = np.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=np.float64)
    taps = np.exp(-(offsets**2) / (2 * BLUR_SIGMA**2))
    return (taps / taps.sum()).astype(np.float32)


BLUR_TAPS = _blur_taps()


def _check_inputs(reference: np.ndarray, distorted: np.ndarray) -> None:
    for name, image in (("reference", reference), ("distorted", distorted)):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"`{name}` must be a uint8 RGB array (H, W, 3) but is {image.dtype} {image.shape}")
    if reference.shape != distorted.shape:
        raise ValueError(f"images differ in shape: reference {reference.shape}, distorted {distorted.shape}")
    if min(reference.shape[:2]) < MIN_SIDE:
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE} for SSIMULACRA 2 but are {reference.shape}")


def _band_rows(width: int) -> int:
    return max(1, BAND_PIXELS // width)


def _row_bands(height: int, width: int) -> Iterator[slice]:
    """Bands of rows small enough that every elementwise step on them stays in the CPU cache.

    Whole-image numpy operations on a 2048x2048 image stream each temporary through main memory; working
    band by band makes the blur and the error maps several times faster.
    """
    step = _band_rows(width)
    for top in range(0, height, step):
        yield slice(top, min(top + step, height))


def _to_linear_planes(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (H, W, 3) -> linear RGB planes (3, H, W) float32; planar keeps each channel contiguous."""
    return SRGB_TO_LINEAR[np.ascontiguousarray(rgb.transpose(2, 0, 1))]


def _downsample(planes: np.ndarray) -> np.ndarray:
    """2x2 box average; an odd side repeats its last row/column, so the output side is ceil(side / 2)."""
    _, h, w = planes.shape
    if h % 2 or w % 2:
        planes = np.pad(planes, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    out = planes[:, 0::2, 0::2] + planes[:, 1::2, 0::2]
    out += planes[:, 0::2, 1::2]
    out += planes[:, 1::2, 1::2]
    out *= 0.25
    return out


def _linear_to_positive_xyb(planes: np.ndarray) -> np.ndarray:
    """Linear RGB planes -> XYB planes shifted and scaled into roughly 0..1 as ssimulacra2 does."""
    out = np.empty_like(planes)
    matrix = OPSIN_ABSORBANCE.astype(np.float32)
    for rows in _row_bands(*planes.shape[1:]):
        mixed = np.einsum("ij,jhw->ihw", matrix, planes[:, rows]) + np.float32(OPSIN_BIAS)
        np.maximum(mixed, 0, out=mixed)  # as the reference: out-of-gamut colours must not give a NaN cube root
        np.cbrt(mixed, out=mixed)
        mixed -= np.float32(np.cbrt(OPSIN_BIAS))
        long, medium, short = mixed
        y = 0.5 * (long + medium)
        out[0, rows] = 7.0 * (long - medium) + 0.42  # 14 * X with X = (L - M) / 2
        out[1, rows] = y + 0.01
        out[2, rows] = short - y + 0.55
    return out


def _correlate(source: np.ndarray, axis: int, out: np.ndarray, tmp: np.ndarray) -> None:
    """out = the blur taps applied along `axis` of `source`, which is longer than `out` by 2·radius there."""
    length = out.shape[axis]

    def shifted(offset: int) -> np.ndarray:
        index = [slice(None)] * source.ndim
        index[axis] = slice(BLUR_RADIUS + offset, BLUR_RADIUS + offset + length)
        return source[tuple(index)]

    np.multiply(shifted(0), BLUR_TAPS[BLUR_RADIUS], out=out)
    for k in range(1, BLUR_RADIUS + 1):
        np.add(shifted(-k), shifted(k), out=tmp)  # the kernel is symmetric: one multiply per pair of taps
        tmp *= BLUR_TAPS[BLUR_RADIUS + k]
        out += tmp


def _blur(planes: np.ndarray) -> np.ndarray:
    """Separable Gaussian of (C, H, W) planes, zero outside the image (as the reference's recursive filter)."""
    c, h, w = planes.shape
    r = BLUR_RADIUS
    horizontal = np.empty_like(planes)
    band = np.zeros((c, _band_rows(w), w + 2 * r), np.float32)  # zero columns either side stay zero
    tmp = np.empty((c, _band_rows(w), w), np.float32)
    for rows in _row_bands(h, w):
        n = rows.stop - rows.start
        band[:, :n, r : r + w] = planes[:, rows]
        _correlate(band[:, :n], 2, horizontal[:, rows], tmp[:, :n])
    padded = np.zeros((c, h + 2 * r, w), np.float32)
    padded[:, r : r + h] = horizontal
    out = np.empty_like(planes)
    for rows in _row_bands(h, w):
        n = rows.stop - rows.start
        _correlate(padded[:, rows.start : rows.stop + 2 * r], 1, out[:, rows], tmp[:, :n])
    return out


def _scale_errors(ref_xyb: np.ndarray, dist_xyb: np.ndarray) -> np.ndarray:
    """The pooled errors of one scale, shaped [channel][1-norm, 4-norm][ssim, artifact, detail loss]."""
    mu1, mu2 = _blur(ref_xyb), _blur(dist_xyb)
    s11, s22, s12 = _blur(ref_xyb * ref_xyb), _blur(dist_xyb * dist_xyb), _blur(ref_xyb * dist_xyb)
    c2 = np.float32(SSIM_C2)
    sums = np.zeros((3, 2, 3))
    for rows in _row_bands(*ref_xyb.shape[1:]):
        m1, m2 = mu1[:, rows], mu2[:, rows]
        # SSIM with the variances and covariance taken as blur(a*b) - mu_a*mu_b, in float32 as the reference.
        # Its luminance term drops SSIM's denominator: XYB is already perceptually uniform, so errors in dark
        # regions should not weigh more than in bright ones.
        luminance = 1.0 - (m1 - m2) ** 2
        structure = (2 * (s12[:, rows] - m1 * m2) + c2) / ((s11[:, rows] - m1 * m1) + (s22[:, rows] - m2 * m2) + c2)
        ssim_error = np.maximum(1.0 - luminance * structure, 0)

        ratio = (1.0 + np.abs(dist_xyb[:, rows] - m2)) / (1.0 + np.abs(ref_xyb[:, rows] - m1)) - 1.0
        artifact = np.maximum(ratio, 0)  # the distorted image has edges where the reference is smooth
        detail_loss = np.maximum(-ratio, 0)  # the reference has edges where the distorted image is smooth

        for m, error in enumerate((ssim_error, artifact, detail_loss)):
            squared = error * error
            sums[:, 0, m] += error.sum(axis=(1, 2))
            sums[:, 1, m] += (squared * squared).sum(axis=(1, 2))
    means = sums / (ref_xyb.shape[1] * ref_xyb.shape[2])
    means[:, 1] = np.sqrt(np.sqrt(means[:, 1]))
    return means


def _score_from_errors(weighted: float) -> float:
    """The published mapping of the weighted error sum to the 100-is-lossless scale."""
    s = weighted * SCORE_SCALE
    a, b, c = SCORE_CUBIC
    s = a * s + b * s * s + c * s * s * s
    return 100.0 - 10.0 * s**SCORE_EXPONENT if s > 0 else 100.0


def ssimulacra2(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SSIMULACRA 2 score of `distorted` against `reference`, both uint8 RGB (H, W, 3), at least 8x8."""
    _check_inputs(reference, distorted)
    ref_linear, dist_linear = _to_linear_planes(reference), _to_linear_planes(distorted)
    errors = np.zeros((3, NUM_SCALES, 2, 3))
    for scale in range(NUM_SCALES):
        if scale:
            ref_linear, dist_linear = _downsample(ref_linear), _downsample(dist_linear)
        if min(ref_linear.shape[1:]) < MIN_SIDE:
            break  # coarser scales of a small image contribute nothing, as in the reference
        errors[:, scale] = _scale_errors(_linear_to_positive_xyb(ref_linear), _linear_to_positive_xyb(dist_linear))
    return float(_score_from_errors(float(np.sum(WEIGHTS * errors))))
