"""A learned thumbnail held within a bound of the photo's bicubic thumbnail.

The rescaler hides detail in the thumbnail's pixels; over a flat or dark area it can hide it as a colour blotch
that strays far from what the photo looks like there. A stored thumbnail must look like a thumbnail, so how far it
may stray is bounded: the mean absolute difference from the bicubic thumbnail (8-bit levels, three channels) over
its worst 4x4 block (:func:`model.evaluation.metrics.worst_local_deviation`).

:func:`bound_deviation` pulls a thumbnail within the bound where it strays beyond it and leaves it bit for bit
elsewhere. Each pixel's difference from the bicubic thumbnail is scaled by ``target / m``, where ``m`` is the
largest deviation of any block holding the pixel and exceeds the bound (pixels in no such block keep their
value). A block beyond the bound then ends within it: every one of its pixels is scaled by at most ``target / its
own deviation``, and ``target`` sits half a level under the bound, the most rounding to 8 bits can add back. A
block within the bound does not grow: a pixel only moves towards the bicubic value, and rounding keeps it between
the two. So the model's detail is kept wherever the thumbnail already looks like a thumbnail, which is nearly
everywhere on most photos (no Kodak-24 thumbnail has a block beyond 48 levels), and attenuated only under the
blotches.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from model.evaluation.metrics import DEVIATION_WINDOW, block_deviations
from model.thumbnail import Thumbnail, plain_thumbnail_image

# Levels over the worst 4x4 block; the service's default (TADM_VERIFY_THUMBNAIL_MAX_DEVIATION) is the same.
DEFAULT_MAX_DEVIATION = 48.0
_ROUNDING = 0.5  # the most rounding a scaled pixel back to 8 bits can move it, per channel


def bounded_thumbnail(thumbnail: Thumbnail, original: Image.Image, max_deviation: float) -> Thumbnail:
    """The learned ``thumbnail`` of the RGB image ``original`` within ``max_deviation`` levels of the image's
    bicubic thumbnail: the same object when it already is, else a copy with its pixels pulled in."""
    pixels = np.asarray(thumbnail.image.convert("RGB"))
    reference = np.asarray(plain_thumbnail_image(original, thumbnail.scale))
    bounded = bound_deviation(pixels, reference, max_deviation)
    return thumbnail if bounded is pixels else replace(thumbnail, image=Image.fromarray(bounded))


def bound_deviation(thumbnail: np.ndarray, reference: np.ndarray, max_deviation: float,
                    window: int = DEVIATION_WINDOW) -> np.ndarray:
    """``thumbnail`` (uint8 RGB) with every ``window`` x ``window`` block within ``max_deviation`` levels of
    ``reference`` (the bicubic thumbnail of the same photo, same shape), as the module describes; ``thumbnail``
    itself when every block already is."""
    if max_deviation < 0:
        raise ValueError(f"max_deviation must be at least 0 levels but is {max_deviation}")
    blocks = block_deviations(reference, thumbnail, window)
    if blocks.max() <= max_deviation:
        return thumbnail
    worst = _worst_block_holding_each_pixel(blocks, thumbnail.shape[:2])
    target = max(max_deviation - _ROUNDING, 0.0)  # under half a level: offending blocks become the reference
    factor = np.divide(target, worst, out=np.ones_like(worst), where=worst > max_deviation)[..., None]
    ref = reference.astype(np.float64)
    pulled = ref + factor * (thumbnail.astype(np.float64) - ref)
    return np.clip(np.rint(pulled), 0, 255).astype(np.uint8)


def _worst_block_holding_each_pixel(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """For each pixel of an image of ``shape``, the largest of ``blocks`` (indexed by their top-left pixel)
    among the blocks that hold it."""
    h, w = shape
    kh, kw = h - blocks.shape[0] + 1, w - blocks.shape[1] + 1  # the block size block_deviations used
    padded = np.pad(blocks, ((kh - 1, kh - 1), (kw - 1, kw - 1)))  # zero: no block starts there
    worst = np.zeros(shape)
    for dy in range(kh):  # the block starting dy rows and dx columns above-left of the pixel
        for dx in range(kw):
            worst = np.maximum(worst, padded[kh - 1 - dy:kh - 1 - dy + h, kw - 1 - dx:kw - 1 - dx + w])
    return worst
