"""The photos a consistency step is trained and judged on, as ``collect`` leaves them in its cache (one folder per
photo: the original, the learned thumbnail, the reconstruction without a step), and a step's PSNR on them.
Shared by training (:mod:`model.training.consistency`) and comparison (:mod:`model.training.consistency_compare`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from model.consistency import ThumbnailConsistency
from model.image_tensors import from_levels, pil_to_tensor, pil_to_uint8_tensor, round_to_8bit

# The three PNGs one photo leaves in the cache.
PARTS = ("original", "thumbnail", "reconstruction")


@dataclass
class Example:
    """One collected photo. The full-size images stay 8-bit (``from_levels`` converts what a loss reads): as float
    they took 16 GB for 300 photos of about a megapixel."""

    name: str
    original: torch.Tensor  # (1,3,H,W) uint8
    thumbnail: torch.Tensor  # (1,3,⌈H/s⌉,⌈W/s⌉) in [-1,1]
    reconstruction: torch.Tensor  # (1,3,H,W) uint8

    @classmethod
    def load(cls, folder: Path) -> Example:
        original, thumbnail, reconstruction = (Image.open(folder / f"{part}.png").convert("RGB") for part in PARTS)
        return cls(folder.name, pil_to_uint8_tensor(original), pil_to_tensor(thumbnail),
                   pil_to_uint8_tensor(reconstruction))


def load_examples(cache: Path) -> list[Example]:
    return [Example.load(f) for f in sorted(cache.iterdir()) if (f / "reconstruction.png").exists()]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1,1] images on the 8-bit scale (RGB)."""
    mse = float(((a.clamp(-1, 1) - b) ** 2).mean()) * 127.5**2
    return 10 * math.log10(255**2 / max(mse, 1e-12))


def evaluate(module: ThumbnailConsistency, examples: Sequence[Example]) -> list[tuple[str, float, float]]:
    """(name, PSNR before, PSNR after) for each example, the corrected image quantised as the pipeline does."""
    rows = []
    with torch.no_grad():
        for ex in examples:
            original, reconstruction = from_levels(ex.original), from_levels(ex.reconstruction)
            corrected = round_to_8bit(module.correct(ex.thumbnail, reconstruction))
            rows.append((ex.name, psnr(reconstruction, original), psnr(corrected, original)))
    return rows
