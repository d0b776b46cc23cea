"""The tiling settings are model.tiling.Tiling's knobs, with its defaults, checked when a process starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model.tiling import DEFAULT_TILING, Tiling
from service.config import Settings


def test_tiling_defaults_come_from_the_model_library():
    assert Settings().tiling == DEFAULT_TILING


def test_tiling_is_read_whole_from_the_environment(monkeypatch):
    monkeypatch.setenv("TADM_TILE_SIZE", "64")
    monkeypatch.setenv("TADM_TILE_STRIDE", "48")
    monkeypatch.setenv("TADM_TILE_BATCH_SIZE", "16")
    assert Settings().tiling == Tiling(tile_size=64, tile_stride=48, tile_batch_size=16)


def test_tiling_that_would_leave_gaps_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("TADM_TILE_STRIDE", "200")
    with pytest.raises(ValidationError, match="`tile_stride` \\(200\\) larger than `tile_size` \\(96\\)"):
        Settings()
