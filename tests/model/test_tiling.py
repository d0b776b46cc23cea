from __future__ import annotations

import pytest
import torch

from model.tiling import (
    DEFAULT_TILING,
    Tiling,
    check_overrides,
    denoise_tiled,
    gaussian_window,
    plan_tiles,
    tile_starts,
)


@pytest.mark.parametrize(
    "length, starts",
    [(50, [0]), (96, [0]), (97, [0, 1]), (160, [0, 64]), (200, [0, 64, 104]), (256, [0, 64, 128, 160])],
)
def test_tile_starts(length, starts):
    assert tile_starts(length, 96, 64) == starts


def test_window_is_symmetric():
    w = gaussian_window(96, 80)
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))
    assert w.min() > 0


def identity_step(tiles):
    return tiles.clone(), tiles.mean(dim=(1, 2, 3))


@pytest.mark.parametrize("shape", [(1, 4, 50, 70), (1, 4, 200, 130), (1, 4, 97, 300)])
def test_identity_step_tiled_equals_untiled_and_covers_every_pixel(shape, generator):
    z = torch.randn(shape, generator=generator)
    (result,) = denoise_tiled([z], identity_step, Tiling(tile_size=96, tile_stride=64, tile_batch_size=3))
    assert torch.allclose(result.latent, z, atol=1e-5)
    coverage = torch.zeros(shape[-2:])
    for t in result.tiles:
        coverage[t.slices] += 1
    assert coverage.min() >= 1


def test_each_tile_gets_its_own_timestep(generator):
    z = torch.zeros(1, 4, 160, 160)
    z[..., :96, :96] = torch.randn(1, 4, 96, 96, generator=generator) * 3  # texture top-left only
    (result,) = denoise_tiled([z], identity_step, Tiling(tile_size=96, tile_stride=64))
    assert len(result.tiles) == 4
    assert len(set(result.timesteps)) > 1


def test_batch_size_and_co_batched_latents_do_not_change_results(generator):
    a = torch.randn(1, 4, 130, 170, generator=generator)
    b = torch.randn(1, 4, 100, 96, generator=generator)

    def nonlinear(tiles):
        return torch.tanh(tiles) * 2 + tiles.mean(dim=(1, 2, 3), keepdim=True), tiles.std(dim=(1, 2, 3))

    alone_a = denoise_tiled([a], nonlinear, Tiling(tile_batch_size=1))[0]
    alone_b = denoise_tiled([b], nonlinear, Tiling(tile_batch_size=1))[0]
    together = denoise_tiled([a, b], nonlinear, Tiling(tile_batch_size=16))
    assert torch.allclose(together[0].latent, alone_a.latent, atol=1e-6)
    assert torch.allclose(together[1].latent, alone_b.latent, atol=1e-6)
    assert together[0].timesteps == pytest.approx(alone_a.timesteps)


def test_progress_counts_every_tile(generator):
    calls = []
    z = torch.randn(1, 4, 200, 200, generator=generator)
    denoise_tiled([z], identity_step, Tiling(tile_batch_size=4), progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (9, 9) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_plan_rejects_gaps():
    with pytest.raises(ValueError, match="gaps"):
        plan_tiles(200, 200, 64, 96)


def test_tiling_defaults_are_the_papers_and_bad_knobs_are_named():
    assert (DEFAULT_TILING.tile_size, DEFAULT_TILING.tile_stride, DEFAULT_TILING.tile_batch_size) == (96, 64, 8)
    with pytest.raises(ValueError, match="`tile_stride` \\(96\\) larger than `tile_size` \\(64\\)"):
        Tiling(tile_size=64, tile_stride=96)
    with pytest.raises(ValueError, match="`tile_batch_size` must be >= 1 but is 0"):
        Tiling(tile_batch_size=0)
    with pytest.raises(ValueError, match="must be positive"):
        Tiling(tile_size=0)


def test_overrides_replace_only_the_knobs_given():
    model_default = Tiling(tile_size=80, tile_stride=64)
    assert model_default.overridden() == model_default
    assert model_default.overridden(tile_size=72) == Tiling(tile_size=72, tile_stride=64, tile_batch_size=8)
    assert model_default.overridden(tile_batch_size=2) == Tiling(tile_size=80, tile_stride=64, tile_batch_size=2)
    with pytest.raises(ValueError, match="`tile_stride` \\(90\\) larger than `tile_size` \\(80\\)"):
        model_default.overridden(tile_stride=90)  # fine for the paper's 96, not for this model's 80


def test_overrides_no_model_could_take_are_refused_before_one_is_known():
    check_overrides(tile_stride=500)  # a stride alone may fit some model's tile
    with pytest.raises(ValueError, match="`tile_stride` \\(96\\) larger than `tile_size` \\(64\\)"):
        check_overrides(tile_size=64, tile_stride=96)
    with pytest.raises(ValueError, match="`tile_size` must be >= 1 but is 0"):
        check_overrides(tile_size=0)


def test_tiling_imports_without_torch():
    """The service's settings take their defaults from Tiling in the API process, which has no torch."""
    import subprocess
    import sys

    code = "import sys, model.tiling; assert 'torch' not in sys.modules, 'model.tiling imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
