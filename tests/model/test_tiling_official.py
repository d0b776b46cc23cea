"""The official tile layout against an independent re-implementation of the authors' released tiled inference
(``src/tadm_tile.py`` of github.com/wwangcece/TADM), written here from its description in prose, not from their
code: area skip, square tiles, stride = tile - overlap, the last tile moved back to the border, their window
(row midpoint s/2, column midpoint (s-1)/2), one tile per UNet call, weighted average."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.tiling import OFFICIAL_TILES as OFFICIAL
from model.tiling import PROJECT_TILES as PROJECT
from model.tiling import Tiling, denoise_tiled, plan_tiles_official


def step(tiles):
    """Nonlinear and dependent on each tile's own statistics, as the TPM + UNet are: tile borders matter."""
    t = tiles.std(dim=(1, 2, 3))
    return torch.tanh(tiles) * 2 + tiles.mean(dim=(1, 2, 3), keepdim=True) * t[:, None, None, None], t


def their_positions(length: int, side: int, overlap: int) -> list[int]:
    """Count tiles until (count - 1) * stride + side reaches the length; all but the last at k * stride, the
    last against the far border."""
    stride = side - overlap
    count = 1
    while (count - 1) * stride + side < length:
        count += 1
    return [k * stride for k in range(count - 1)] + [length - side]


def their_tiled_inference(latent: torch.Tensor, tile: int = 96, overlap: int = 32) -> torch.Tensor:
    """The released procedure, one tile per call, merged in float64."""
    _, _, h, w = latent.shape
    if h * w <= tile * tile:
        return step(latent)[0]
    s = min(tile, h, w)
    var = 0.01
    col = [math.exp(-((i - (s - 1) / 2) ** 2) / (s * s) / (2 * var)) / math.sqrt(2 * math.pi * var) for i in range(s)]
    row = [math.exp(-((i - s / 2) ** 2) / (s * s) / (2 * var)) / math.sqrt(2 * math.pi * var) for i in range(s)]
    weights = torch.from_numpy(np.outer(row, col))  # float64, rows = y
    total = torch.zeros(latent.shape, dtype=torch.float64)
    contributors = torch.zeros(latent.shape, dtype=torch.float64)
    for x0 in their_positions(w, s, overlap):
        for y0 in their_positions(h, s, overlap):
            clean, _ = step(latent[:, :, y0 : y0 + s, x0 : x0 + s])
            total[:, :, y0 : y0 + s, x0 : x0 + s] += clean.double() * weights
            contributors[:, :, y0 : y0 + s, x0 : x0 + s] += weights
    return (total / contributors).float()


def test_a_2048x1536_image_is_tiled_and_merged_as_the_released_inference_does(generator):
    z = torch.randn(1, 4, 1536 // 8, 2048 // 8, generator=generator)  # (1, 4, 192, 256)
    (ours,) = denoise_tiled([z], step, Tiling(tile_size=96, tile_stride=64, tile_batch_size=5), layout=OFFICIAL)
    reference = their_tiled_inference(z)
    assert (ours.latent - reference).abs().max() < 1e-5
    assert sorted({t.x for t in ours.tiles}) == [0, 64, 128, 160]
    assert sorted({t.y for t in ours.tiles}) == [0, 64, 96]
    # The project's layout (symmetric window) is measurably not theirs on the same latent: the test has teeth.
    (project,) = denoise_tiled([z], step, Tiling(), layout=PROJECT)
    assert (project.latent - reference).abs().max() > 1e-4


@pytest.mark.parametrize("shape", [(64, 144), (96, 96), (50, 70)])
def test_a_latent_whose_area_fits_one_tile_is_one_pass_without_a_window(shape, generator):
    z = torch.randn(1, 4, *shape, generator=generator)
    (ours,) = denoise_tiled([z], step, Tiling(), layout=OFFICIAL)
    assert len(ours.tiles) == 1 and (ours.tiles[0].h, ours.tiles[0].w) == shape
    assert torch.allclose(ours.latent, their_tiled_inference(z), atol=1e-6)
    if shape == (64, 144):  # the project cuts this one in two 64x96 tiles
        assert len(PROJECT.plan(*shape, 96, 64)) == 2


def test_a_narrow_latent_gets_square_tiles_at_a_shorter_stride(generator):
    tiles = plan_tiles_official(64, 200, 96, 64)
    assert {(t.h, t.w) for t in tiles} == {(64, 64)}
    assert [t.x for t in tiles] == [0, 32, 64, 96, 128, 136] == their_positions(200, 64, 32)
    z = torch.randn(1, 4, 64, 200, generator=generator)
    (ours,) = denoise_tiled([z], step, Tiling(tile_batch_size=4), layout=OFFICIAL)
    assert (ours.latent - their_tiled_inference(z)).abs().max() < 1e-5


def test_the_window_rows_peak_half_a_pixel_lower_than_the_columns():
    w = OFFICIAL.window(96, 96)
    cols, rows = w[0], w[:, 0]
    assert torch.allclose(cols, cols.flip(0))  # columns: symmetric about (s-1)/2
    assert not torch.allclose(rows, rows.flip(0))  # rows: centred at s/2
    assert torch.allclose(rows[1:], rows[1:].flip(0))  # ... which is symmetric on rows 1..s-1
    assert int(rows.argmax()) == 48


@pytest.mark.parametrize("shape", [(32, 400), (20, 500), (33, 300)])
def test_where_their_loop_never_ends_the_plan_still_covers_the_latent(shape, generator):
    tiles = plan_tiles_official(*shape, 96, 64)
    coverage = torch.zeros(shape)
    for t in tiles:
        assert t.h == t.w == min(shape)
        coverage[t.slices] += 1
    assert coverage.min() >= 1 and len(tiles) < shape[1]
    z = torch.randn(1, 4, *shape, generator=generator)
    (ours,) = denoise_tiled([z], lambda x: (x.clone(), x.mean(dim=(1, 2, 3))), Tiling(), layout=OFFICIAL)
    assert torch.allclose(ours.latent, z, atol=1e-5)


def test_co_batched_jobs_of_the_official_layout_give_what_each_gives_alone(generator):
    a = torch.randn(1, 4, 192, 256, generator=generator)
    b = torch.randn(1, 4, 64, 200, generator=generator)
    c = torch.randn(1, 4, 64, 144, generator=generator)
    alone = [denoise_tiled([z], step, Tiling(tile_batch_size=1), layout=OFFICIAL)[0] for z in (a, b, c)]
    together = denoise_tiled([a, b, c], step, Tiling(tile_batch_size=16), layout=OFFICIAL)
    for one, joint in zip(alone, together, strict=True):
        assert torch.allclose(one.latent, joint.latent, atol=1e-6)
        assert joint.timesteps == pytest.approx(one.timesteps)
