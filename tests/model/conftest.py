from __future__ import annotations

import pytest
import torch

from model import TADMPipeline

# One intra-op thread: the suite runs beside worker subprocesses, and oversubscribed OpenMP threads spin.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipe() -> TADMPipeline:
    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator("cpu").manual_seed(0)


@pytest.fixture
def thumbnail_file_with():
    """A function giving a 4x3 PNG thumbnail file of a 64x48 original at 16x whose metadata also holds ``fields``
    as given (valid or not)."""
    import json

    from PIL import Image

    from model.thumbnail_formats import encode

    def make(**fields) -> bytes:
        meta = {"v": 1, "scale": 16, "w": 64, "h": 48, "model": "abc", **fields}
        return encode(Image.new("RGB", (4, 3)), json.dumps(meta), "png")

    return make
