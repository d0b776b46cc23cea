"""Images as tensors: loading a photo (EXIF orientation applied), and the [-1, 1] float tensors the models work on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

ImageInput = Image.Image | str | Path


def load_rgb(image: ImageInput) -> Image.Image:
    """A PIL RGB image with its EXIF orientation applied."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    elif not isinstance(image, Image.Image):
        raise TypeError(f"`image` must be a PIL image or a path but is {type(image).__name__}")
    else:
        image = ImageOps.exif_transpose(image)
    return image.convert("RGB")


def pil_to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL -> (1, 3, H, W) uint8: a quarter of the float tensor's memory, for images kept many at a time."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None]


def from_levels(x: torch.Tensor) -> torch.Tensor:
    """8-bit levels 0..255 (any dtype) -> float32 in [-1, 1]."""
    return x.float() / 127.5 - 1


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL -> (1, 3, H, W) float32 in [-1, 1]."""
    return from_levels(pil_to_uint8_tensor(image))


def _levels(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the nearest of the 256 levels, as floats 0..255."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round()


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, rounding to nearest."""
    return _levels(x[0]).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def round_to_8bit(x: torch.Tensor) -> torch.Tensor:
    """A tensor in [-1, 1] as an 8-bit image would hold it (clamped, rounded to its levels), still in [-1, 1]."""
    return from_levels(_levels(x))
