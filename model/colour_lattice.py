"""The sender's lattice of colour maps: a colour correction that varies over the photo, stored beside the one
colour map for the whole photo (:mod:`model.colour_map`) where it pays for its bytes.

Why: the one colour map leaves the 32x model below bicubic on wide smooth skies (docs/evaluation/robustness.md,
section 9): the step's estimate of the thumbnail's colours is off by an amount that drifts across the photo,
which no single affine map undoes. The sender places ``rows x cols`` points corner to corner over the thumbnail
(about evenly spaced on both sides) and fits, together, one affine correction per point (a 3x3 matrix ``D_k`` and an
offset ``c_k``), blended bilinearly between the points, that brings the mapped low frequencies closest to what the
photo holds at thumbnail resolution (least squares). It stores them as integers in units of :data:`UNIT`
(``"clat"`` in the thumbnail's metadata, compressed: :func:`model.thumbnail.encoded_colour_lattice`). The receiver adds them after the colour map:

    low' = M · low + b;   x̂ = up(low' + Σ_k w_k (D_k · low' + c_k)) + up(g) · (x - up(own))

(``w_k``: point k's bilinear weight; the rest as in :mod:`model.colour_map`). An offset alone per point (3 numbers
instead of 12) was tried first and recovers much less on the stress set's skies: their error is one of contrast
as much as of colour. Lattices of :data:`LATTICE_POINTS` points along the longer side are tried; the sender keeps
the one whose gain in PSNR-Y less its price (:func:`price`: what its bytes would buy spent on the thumbnail) is
largest, and none where no lattice gains more than it costs; where the reconstruction is below bicubic, the one of
those that gains most.
"""

from __future__ import annotations

import json
import math

import torch

from .consistency import down, pad_to_scale
from .thumbnail import COLOUR_LATTICE_MAX_ABS, encoded_colour_lattice

# Corrections are stored in this unit: a coefficient's rounding moves a pixel of the [-1, 1] range by at most 1/512
# (a quarter of an 8-bit level), four coefficients together rarely by more than half a level: at the 33-38 dB the
# lattice is for, about 0.02 dB. A finer unit costs a digit per coefficient.
UNIT = 1 / 256
# The lattices tried, by their points along the photo's longer side. 8 at the most: at 2048 to 4096 pixels the
# points of 8 are 9 to 18 thumbnail pixels apart at 32x, about the 13 pixels the consistency step sees around each.
LATTICE_POINTS = (2, 3, 4, 6, 8)
# What the lattice's bytes must buy to be stored: what they would buy spent on the thumbnail itself. The models'
# own rate: on the stress set (53 photos) the 16x thumbnails take 3.6 times the bytes of the 32x ones (0.0478 and
# 0.0132 bits per pixel) and give 3.08 dB more PSNR-Y, 1.66 dB per doubling of the bytes
# (docs/evaluation/stress-set/results-{16,32}x.json, 2026-12-06).
DB_PER_DOUBLING = 1.66
# The luma weights (BT.601) of the PSNR-Y the choice predicts.
LUMA = (0.299, 0.587, 0.114)
# The fit's ridge, relative to the mean diagonal of its normal equations (fit_colour_lattice).
RIDGE = 1e-5
# Numbers per lattice point: the rows of [D | c].
PER_POINT = 12
# luma_sse works through a full-size difference in bands of about this many pixels.
BAND_PIXELS = 1 << 20


def lattice_shape(size: tuple[int, int], points: int) -> tuple[int, int]:
    """(rows, cols) of the lattice with ``points`` along the longer side of a thumbnail of ``size`` (h, w), the
    shorter side given as many as keep the spacing about even (two at least)."""
    h, w = size
    longer, shorter = max(h, w), min(h, w)
    spacing = max(longer - 1, 1) / (points - 1)
    other = max(2, min(points, 1 + round((shorter - 1) / spacing)))
    return (points, other) if h >= w else (other, points)


def axis_weights(n: int, points: int) -> torch.Tensor:
    """(points, n): the bilinear (hat) weight of each of ``points`` evenly spread from the first sample to the
    last at each of ``n`` samples; each column sums to 1."""
    positions = torch.linspace(0, points - 1, n, dtype=torch.float64)
    return (1 - (positions[None] - torch.arange(points, dtype=torch.float64)[:, None]).abs()).clamp(min=0)


def point_features(low: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(h·w, 4·rows·cols) float64: each thumbnail pixel's ``[r, g, b, 1]`` of ``low`` (1,3,h,w) times each
    point's bilinear weight there (the columns a point's [D | c] multiplies)."""
    h, w = low.shape[-2:]
    weights = torch.einsum("ih,jw->hwij", axis_weights(h, rows), axis_weights(w, cols)).reshape(h * w, rows * cols)
    pixels = torch.cat((low[0].double().cpu().reshape(3, -1).T, torch.ones(h * w, 1, dtype=torch.float64)), 1)
    return (weights[:, :, None] * pixels[:, None, :]).reshape(h * w, rows * cols * 4)


def lattice_correction(lattice: tuple[int, ...], low: torch.Tensor) -> torch.Tensor:
    """(1,3,h,w) float64: ``Σ_k w_k (D_k · low + c_k)`` for the lattice ``(rows, cols, *coefficients)``."""
    rows, cols = lattice[0], lattice[1]
    h, w = low.shape[-2:]
    coefficients = torch.tensor(lattice[2:], dtype=torch.float64).reshape(rows * cols * 4, 3) * UNIT
    return (point_features(low, rows, cols) @ coefficients).T.reshape(1, 3, h, w)


def apply_colour_lattice(lattice: tuple[int, ...], low: torch.Tensor) -> torch.Tensor:
    """``low`` (1,3,h,w), the step's low frequencies after the colour map, with the lattice's correction added."""
    return low + lattice_correction(lattice, low).to(low.device, low.dtype)


def fit_colour_lattice(low: torch.Tensor, residual: torch.Tensor, rows: int, cols: int) -> tuple[int, ...]:
    """The ``rows x cols`` lattice whose correction of ``low`` (1,3,h,w) comes closest (least squares) to
    ``residual`` (1,3,h,w), what the photo differs from the reconstruction at thumbnail resolution:
    ``(rows, cols, *coefficients)``, each point's 4x3 ``[D | c]^T`` in turn."""
    features = point_features(low, rows, cols)
    targets = residual[0].reshape(3, -1).double().cpu().T
    # A little ridge (relative to the normal equations' mean diagonal): where the thumbnail's colours barely vary
    # around a point (a tiny or flat thumbnail) its matrix and its offset do nearly the same thing, and least
    # squares would buy a sliver of fit with huge coefficients of opposite sign. It must stay small: on a sky the
    # colours vary little and the matrices are what takes out its errors of contrast (1e-3 lost 0.1-0.3 dB of
    # the gain on the skies; 1e-7 let a training photo's coefficients run past their bound).
    gram = features.T @ features
    ridge = RIDGE * float(gram.diagonal().mean())
    # the normal equations, made well-posed by the ridge: a 40-megapixel photo's thumbnail has ~150k pixels
    solution = torch.linalg.solve(gram + ridge * torch.eye(gram.shape[0], dtype=torch.float64), features.T @ targets)
    units = (solution / UNIT).round().clamp(-COLOUR_LATTICE_MAX_ABS, COLOUR_LATTICE_MAX_ABS)
    return (rows, cols, *(int(v) for v in units.reshape(-1)))


def metadata_bytes(lattice: tuple[int, ...]) -> int:
    """What the lattice adds to the thumbnail's file: its ``,"clat":[...]`` in the metadata's compact JSON."""
    return len(',"clat":') + len(json.dumps(encoded_colour_lattice(lattice), separators=(",", ":")))


def price(lattice_bytes: int, file_bytes: int) -> float:
    """The PSNR-Y (dB) a lattice of ``lattice_bytes`` must gain to be stored in a thumbnail file of
    ``file_bytes``: :data:`DB_PER_DOUBLING` for each doubling of the file it makes."""
    return DB_PER_DOUBLING * math.log2(1 + lattice_bytes / file_bytes)


def luma_sse(x: torch.Tensor) -> float:
    """Sum of squares of the luma of (1,3,h,w) ``x`` (BT.601 weights, no offset), in float64 a band of rows at a
    time: a 40-megapixel difference would otherwise take three float64 planes (1 GB) at once."""
    weights = torch.tensor(LUMA, dtype=torch.float64).reshape(1, 3, 1, 1)
    rows = max(1, BAND_PIXELS // x.shape[-1])
    return sum(float(((x[..., top:top + rows, :].double().cpu() * weights).sum(1) ** 2).sum())
               for top in range(0, x.shape[-2], rows))


def choose_colour_lattice(low: torch.Tensor, difference: torch.Tensor, scale: int, file_bytes: int,
                          points: tuple[int, ...] = LATTICE_POINTS, *,
                          below_bicubic: bool = False) -> tuple[int, ...] | None:
    """The lattice worth storing for the low frequencies ``low`` (1,3,h,w, after the colour map) of a
    reconstruction that the photo differs from by ``difference`` (1,3,H,W, full size, in the [-1, 1] range), in a
    thumbnail file of ``file_bytes`` so far, or None. Each candidate's gain in PSNR-Y is predicted at thumbnail
    resolution: the correction takes out of the full-size error what it takes out of its thumbnail (the
    lattice is smooth on the scale of a thumbnail pixel); the caller measures the chosen one at full size.

    Of the lattices that gain more than their price, the one that gains most over its price; where the
    reconstruction is ``below_bicubic`` (worse than bicubic from a plain thumbnail of the same size), the one that
    gains most. Why: the price is what the bytes would buy on average, and near its ties the choice is a coin
    toss that the mean does not feel; below bicubic, a user would have been better served by a plain thumbnail,
    so the tie goes to the better reconstruction (a 5x8 lattice instead of 3x4 on a plain blue sky: +0.16 dB for
    672 bytes, priced at 0.16 dB)."""
    full_sse = luma_sse(difference)
    residual = down(pad_to_scale(difference, scale), scale).double().cpu()
    h, w = residual.shape[-2:]
    thumb_sse = luma_sse(residual)
    # the thumbnail's pixels each stand for scale² of the photo's
    per_pixel = difference.shape[-2] * difference.shape[-1] / (h * w)
    best, best_score = None, 0.0
    for n in points:
        lattice = fit_colour_lattice(low, residual, *lattice_shape((h, w), n))
        left = residual - lattice_correction(lattice, low)
        reduction = (thumb_sse - luma_sse(left)) * per_pixel
        if reduction <= 0 or full_sse <= 0:
            continue
        gain = 10 * math.log10(full_sse / max(full_sse - reduction, full_sse * 1e-6))
        over_price = gain - price(metadata_bytes(lattice), file_bytes)
        score = gain if below_bicubic else over_price
        if over_price > 0 and score > best_score:
            best, best_score = lattice, score
    return best
