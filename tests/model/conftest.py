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
