"""Fixtures for the evaluation tests: real photographs, cropped small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def photo(kodak_dir: Path) -> Image.Image:
    """A 256x192 crop of a Kodak photograph (large enough for five-scale MS-SSIM)."""
    with Image.open(kodak_dir / "kodak__kodim23.png") as img:
        return img.convert("RGB").crop((256, 128, 512, 320))


@pytest.fixture(scope="session")
def photo_array(photo: Image.Image) -> np.ndarray:
    return np.asarray(photo)


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory, kodak_dir: Path) -> Path:
    """Two 256x192 crops of different Kodak photographs."""
    folder = tmp_path_factory.mktemp("small_kodak")
    for name in ("kodak__kodim03.png", "kodak__kodim23.png"):
        with Image.open(kodak_dir / name) as img:
            img.convert("RGB").crop((192, 128, 448, 320)).save(folder / name)
    return folder
