from __future__ import annotations

import pytest
import torch

from model import TADMPipeline


@pytest.fixture(scope="session")
def tiny_pipe() -> TADMPipeline:
    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator("cpu").manual_seed(0)
