"""Baselines every table carries: what a user gets without TADM at the same storage cost.

* ``bicubic``: Pillow's bicubic (antialiased) downscale to the thumbnail size of the method being compared
  (``ceil(W/s) x ceil(H/s)``), stored as a plain PNG, and bicubic back up to the original size.
* ``jpeg``, ``webp``, ``avif``: the whole image in that codec at equal bytes (see :mod:`.codecs`): the byte
  budget is the bicubic thumbnail's PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from model.thumbnail import plain_thumbnail_image

from .codecs import CODECS, decode, encode_within

BASELINES = ("bicubic", *CODECS)


@dataclass(frozen=True)
class Reconstruction:
    """What one method stores for one image and what it gives back."""

    method: str
    image: Image.Image  # RGB, the original size
    stored_bytes: int  # the file a user would keep
    detail: str = ""  # e.g. the codec quality chosen
    thumbnail: Image.Image | None = None  # the small image a viewer is shown, for a method that keeps one


def png_bytes(image: Image.Image) -> bytes:
    """A plain PNG (no metadata), compressed as hard as Pillow can."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def bicubic_thumbnail(image: Image.Image, scale: int) -> Image.Image:
    return plain_thumbnail_image(image, scale)  # the service's plain thumbnail: the same pixels


def bicubic(image: Image.Image, scale: int) -> Reconstruction:
    thumb = bicubic_thumbnail(image, scale)
    stored = png_bytes(thumb)
    return Reconstruction("bicubic", thumb.resize(image.size, Image.Resampling.BICUBIC), len(stored))


def codec(image: Image.Image, name: str, budget: int) -> Reconstruction:
    encoded = encode_within(image, name, budget)
    detail = f"q={encoded.quality}" + ("" if encoded.within_budget else " (over budget: lowest quality)")
    return Reconstruction(name, decode(encoded.data), encoded.size, detail)


def run_baselines(
    image: Image.Image, scale: int, methods: tuple[str, ...] = BASELINES, budget: int | None = None
) -> list[Reconstruction]:
    """Every requested baseline for one RGB image at one scale; the codecs get ``budget`` bytes, by default the
    bicubic thumbnail PNG's."""
    unknown = sorted(set(methods) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINES)}")
    reference = bicubic(image, scale)
    results = [reference] if "bicubic" in methods else []
    budget = reference.stored_bytes if budget is None else budget
    results += [codec(image, m, budget) for m in methods if m != "bicubic"]
    return results
