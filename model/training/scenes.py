"""Hard scenes made from ordinary training crops: night, fog, high key and soft focus.

The training photos are mostly well exposed and textured, so flat, dark and hazy areas are rare in the crops;
with pixel MSE as the loss they also weigh little (a 37-dB error on a dark wall is tiny next to a 22-dB error
on foliage). Yet they are where a rescaler fails on real photographs: the thumbnail drifts in colour and the
reconstruction falls far below plain bicubic upsampling. Each transform below turns a crop into one such scene
with the same geometry, then quantises it to 8 bits as a real photo would be.

Every transform is drawn from the caller's generator, so a sample stays a pure function of (seed, index).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SCENES = ("night", "fog", "high_key", "soft")


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def _night(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Underexposed in linear light (1/30 to 1/3 of the light), as a night or low-key shot."""
    return _to_srgb(_to_linear(rgb) * rng.uniform(1 / 30, 1 / 3))


def _fog(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniform veil of airlight over most of the contrast, tinted slightly grey-blue or warm."""
    veil = rng.uniform(0.45, 0.9)
    airlight = np.clip(rng.uniform(0.55, 0.95) + rng.normal(0.0, 0.03, size=3), 0.0, 1.0)
    return rgb * (1 - veil) + airlight * veil


def _high_key(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Overexposed in linear light (2x to 5x), clipping as snow and bright skies do."""
    return _to_srgb(_to_linear(rgb) * rng.uniform(2.0, 5.0))


def _soft(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Out of focus: a Gaussian blur of 4 to 24 px, which leaves smooth gradients such as a clear sky."""
    return image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(4.0, 24.0))))


def hard_scene(image: Image.Image, rng: np.random.Generator, scene: str | None = None) -> tuple[Image.Image, str]:
    """``image`` (an RGB crop) as one of :data:`SCENES` (``scene``, or drawn from ``rng``), its strength drawn
    from ``rng``, quantised to 8 bits."""
    if scene is None:
        scene = SCENES[int(rng.integers(len(SCENES)))]
    elif scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    if scene == "soft":
        return _soft(image, rng), scene
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    transform = {"night": _night, "fog": _fog, "high_key": _high_key}[scene]
    out = np.clip(np.rint(transform(rgb, rng) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(out), scene
