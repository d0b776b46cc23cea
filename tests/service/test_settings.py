"""The tiling settings are model.tiling.Tiling's knobs over the model's own default, checked when a process
starts (what no model could take; a stride above the loaded model's tile: tests/service/test_worker.py); so are
the model's scale and the formats the verifying reconstruction is cached in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model.backbones import NANO
from model.tiling import DEFAULT_TILING, Tiling
from service.config import Settings


def test_unset_tiling_is_the_models_default():
    assert Settings().tiling_for(NANO.tiling) == NANO.tiling == Tiling(tile_size=80, tile_stride=64)
    assert Settings().tiling_for(DEFAULT_TILING) == DEFAULT_TILING


def test_tiling_set_in_the_environment_overrides_the_model(monkeypatch):
    monkeypatch.setenv("TADM_TILE_SIZE", "64")
    monkeypatch.setenv("TADM_TILE_STRIDE", "48")
    monkeypatch.setenv("TADM_TILE_BATCH_SIZE", "16")
    assert Settings().tiling_for(NANO.tiling) == Tiling(tile_size=64, tile_stride=48, tile_batch_size=16)


def test_a_knob_set_alone_keeps_the_models_others(monkeypatch):
    monkeypatch.setenv("TADM_TILE_SIZE", "72")
    assert Settings().tiling_for(NANO.tiling) == Tiling(tile_size=72, tile_stride=64, tile_batch_size=8)


@pytest.mark.parametrize(("env", "message"), [
    ({"TADM_TILE_SIZE": "64", "TADM_TILE_STRIDE": "200"}, "`tile_stride` \\(200\\) larger than `tile_size` \\(64\\)"),
    ({"TADM_TILE_BATCH_SIZE": "0"}, "`tile_batch_size` must be >= 1 but is 0"),
])
def test_tiling_no_model_could_take_is_refused_at_start(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize(("env", "message"), [
    ({"TADM_MODEL_SCALE": "8"}, "TADM_MODEL_SCALE must be 16 or 32 but is 8"),
    ({"TADM_VERIFY_CACHED_FORMATS": "png,gif"}, "unknown formats \\['gif'\\]: use png, webp, jpeg"),
])
def test_a_scale_or_format_the_service_does_not_have_is_refused_at_start(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
