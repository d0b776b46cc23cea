"""Verified ingest: a thumbnail is kept only once it is known to give the photo back.

After a downscale the worker reconstructs the new thumbnail once, on the path ``GET /full`` takes, and measures
it against the upload (PSNR-Y, MS-SSIM-Y, SSIMULACRA2: :func:`model.evaluation.metrics.image_quality`, the
metrics ``tadm eval`` reports) beside bicubic from a plain thumbnail of the same size. The decisions:

* first the model's thumbnail is held within the bound on how far a thumbnail may stray from the bicubic
  thumbnail (``TADM_VERIFY_THUMBNAIL_MAX_DEVIATION``, levels over its worst 4x4 block): where a colour blotch
  goes beyond it, the blotch is pulled in (:func:`model.thumbnail_bound.bounded_thumbnail`; elsewhere the
  thumbnail is kept bit for bit), and that thumbnail is the candidate, reconstructed and measured. So every stored
  thumbnail looks like a thumbnail, and a photo with one blotch keeps the model's detail everywhere else;
* a fixed scale keeps the candidate unless its reconstruction is worse than bicubic's by more than the margin
  (``TADM_VERIFY_MARGIN_DB``); then the plain thumbnail is stored instead, so no stored photo comes back worse
  than bicubic would give it (within the margin);
* ``scale=auto`` keeps the first candidate, most compact first, whose reconstruction meets the quality target
  (:class:`Target`), and the plain thumbnail of the last scale when none does.

Pure functions of images and figures: the worker's batch runner calls them in its compute thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from model.evaluation.metrics import image_quality, worst_local_deviation
from model.thumbnail import Thumbnail, plain_thumbnail, plain_thumbnail_image, plain_upscale
from model.thumbnail_bound import bounded_thumbnail

# thumbnail -> (the thumbnail to store: with a colour map where the sender fitted one, its reconstruction)
Reconstruct = Callable[[Thumbnail], tuple[Thumbnail, Image.Image]]


@dataclass(frozen=True)
class Quality:
    """What the stored thumbnail's reconstruction (at the default output) measured against the upload."""

    method: str  # "tadm" or "plain": how the stored thumbnail was made
    psnr_y: float
    ms_ssim_y: float | None  # None for an image too small for five MS-SSIM scales
    ssimulacra2: float
    bicubic_psnr_y: float  # bicubic from a plain thumbnail of the same size
    # the stored thumbnail's worst 4x4-block deviation from the bicubic thumbnail, in 8-bit levels (0 when plain)
    thumbnail_deviation: float = 0.0
    # the model's thumbnail went beyond the bound and was pulled in before it was verified
    thumbnail_pulled_in: bool = False
    # the stored thumbnail carries the sender's colour map / its lattice of colour maps ("rows x cols")
    colour_map: bool = False
    colour_lattice: str | None = None

    def as_dict(self) -> dict:
        return {name: (round(value, 4) if isinstance(value, float) else value)
                for name, value in asdict(self).items()}


@dataclass(frozen=True)
class Target:
    """A quality a reconstruction must reach (``scale=auto``); an unset figure is not asked for."""

    min_psnr_y: float | None = None
    min_ssimulacra2: float | None = None

    def met_by(self, quality: Quality) -> bool:
        return ((self.min_psnr_y is None or quality.psnr_y >= self.min_psnr_y)
                and (self.min_ssimulacra2 is None or quality.ssimulacra2 >= self.min_ssimulacra2))


@dataclass(frozen=True)
class Verified:
    """A thumbnail with its measured reconstruction: what the worker stores, caches and records."""

    thumbnail: Thumbnail
    reconstruction: Image.Image
    quality: Quality


def measure(original: np.ndarray, thumbnail: Thumbnail, reconstruction: Image.Image, bicubic: float,
            pulled_in: bool = False) -> Verified:
    """The figures of one candidate thumbnail whose reconstruction is given."""
    figures = image_quality(original, np.asarray(reconstruction.convert("RGB")))
    ms_ssim = figures["ms_ssim_y"]
    reference = np.asarray(plain_thumbnail_image(Image.fromarray(original), thumbnail.scale))
    quality = Quality(method=thumbnail.method, psnr_y=_finite(figures["psnr_y"]),
                      ms_ssim_y=None if math.isnan(ms_ssim) else ms_ssim, ssimulacra2=figures["ssimulacra2"],
                      bicubic_psnr_y=_finite(bicubic),
                      thumbnail_deviation=worst_local_deviation(reference, np.asarray(thumbnail.image)),
                      thumbnail_pulled_in=pulled_in, colour_map=thumbnail.colour_map is not None,
                      colour_lattice=lattice_size(thumbnail))
    return Verified(thumbnail, reconstruction, quality)


def lattice_size(thumbnail: Thumbnail) -> str | None:
    """``"rows x cols"`` of the thumbnail's lattice of colour maps, None without one."""
    lattice = thumbnail.colour_lattice
    return None if lattice is None else f"{lattice[0]}x{lattice[1]}"


def verify_plain(original: np.ndarray, scale: int, bicubic: float) -> Verified:
    """The plain thumbnail at ``scale``, measured (its reconstruction is bicubic's)."""
    thumbnail = plain_thumbnail(Image.fromarray(original), scale)
    return measure(original, thumbnail, plain_upscale(thumbnail), bicubic)


def candidate(original: np.ndarray, learned: Thumbnail, reconstruct: Reconstruct, max_deviation: float,
              bicubic: float) -> Verified:
    """The model's thumbnail held within ``max_deviation`` of the bicubic one, reconstructed and measured."""
    within = bounded_thumbnail(learned, Image.fromarray(original), max_deviation)
    stored, reconstruction = reconstruct(within)
    return measure(original, stored, reconstruction, bicubic, pulled_in=within is not learned)


def keep_or_fall_back(original: np.ndarray, learned: Thumbnail, reconstruct: Reconstruct,
                      margin_db: float, max_deviation: float, bicubic: float) -> Verified:
    """A fixed scale: the model's thumbnail held within ``max_deviation``, or the plain one when its
    reconstruction is worse than ``bicubic`` (model.plain_rule.bicubic_psnr_y at its scale) by more than
    ``margin_db`` dB."""
    kept = candidate(original, learned, reconstruct, max_deviation, bicubic)
    # The deviation is checked again: the bound is a promise about every stored thumbnail, not only this path's.
    if kept.quality.psnr_y >= bicubic - margin_db and looks_like_a_thumbnail(kept, max_deviation):
        return kept
    return verify_plain(original, learned.scale, bicubic)


def looks_like_a_thumbnail(candidate: Verified, max_deviation: float) -> bool:
    return candidate.quality.thumbnail_deviation <= max_deviation


def _finite(value: float) -> float:
    """PSNR of identical images is infinite, which JSON cannot carry: 100 dB says the same for 8-bit pixels."""
    return value if math.isfinite(value) else 100.0
