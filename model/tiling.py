"""Tiled latent inference (supplement Algorithm 1, spec section 5).

The latent is cut into overlapping tiles (96 with stride 64 by default, in latent pixels); every tile gets its
own timestep and its own one-step denoise; the clean tiles are merged with a symmetric Gaussian window. Tiles
of several latents (several jobs) are gathered and batched together through one step call: the batch size is
a performance knob and never changes a result.

:class:`Tiling` holds the three knobs and their defaults, once; the command line, the worker's settings and the
pipeline pass it whole, by the same field names. This module imports torch only when it computes, so that the
service's settings (read by the API, which has no torch) can take their defaults from it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Tiling:
    """How the latent is cut into tiles and how many tiles share one step call, in latent pixels.

    ``tile_size`` and ``tile_stride`` decide the result; ``tile_batch_size`` is speed (and memory) only.
    """

    tile_size: int = 96
    tile_stride: int = 64
    tile_batch_size: int = 8

    def __post_init__(self) -> None:
        if self.tile_size <= 0 or self.tile_stride <= 0:
            raise ValueError(f"`tile_size` and `tile_stride` must be positive but are {self.tile_size} and "
                             f"{self.tile_stride}")
        if self.tile_stride > self.tile_size:
            raise ValueError(f"`tile_stride` ({self.tile_stride}) larger than `tile_size` ({self.tile_size}) "
                             "would leave gaps")
        if self.tile_batch_size < 1:
            raise ValueError(f"`tile_batch_size` must be >= 1 but is {self.tile_batch_size}")


DEFAULT_TILING = Tiling()


@dataclass(frozen=True)
class Tile:
    """A window of a latent: rows ``y:y+h``, columns ``x:x+w``."""

    y: int
    x: int
    h: int
    w: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Origins 0, stride, 2·stride, …; the last tile is moved back to end at the border."""
    if tile <= 0 or stride <= 0:
        raise ValueError(f"`tile` and `stride` must be positive but are {tile} and {stride}")
    if stride > tile:
        raise ValueError(f"`stride` ({stride}) larger than `tile` ({tile}) would leave gaps")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def plan_tiles(height: int, width: int, tile: int, stride: int) -> list[Tile]:
    """The tiles of a (height, width) latent; a dimension not larger than ``tile`` is one tile of its length."""
    th, tw = min(tile, height), min(tile, width)
    return [Tile(y, x, th, tw) for y in tile_starts(height, tile, stride) for x in tile_starts(width, tile, stride)]


def gaussian_window(h: int, w: int, var: float = 0.01) -> torch.Tensor:
    """Symmetric Gaussian weights (h, w) peaking at the tile centre; ``var`` is relative to the tile size."""
    import torch

    def axis(n: int) -> torch.Tensor:
        mid = (n - 1) / 2
        pos = torch.arange(n, dtype=torch.float64)
        return torch.exp(-((pos - mid) ** 2) / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)

    return torch.outer(axis(h), axis(w)).float()


# step(tiles (B,C,h,w)) -> (clean tiles (B,C,h,w), timesteps (B,))
StepFn = Callable[["torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]
ProgressFn = Callable[[int, int], None]


@dataclass
class TiledResult:
    latent: torch.Tensor  # (1, C, H, W), merged
    tiles: list[Tile]
    timesteps: list[float]  # one per tile, same order as `tiles`


def denoise_tiled(
    latents: Sequence[torch.Tensor],
    step: StepFn,
    tiling: Tiling = DEFAULT_TILING,
    progress: ProgressFn | None = None,
) -> list[TiledResult]:
    """Run ``step`` over the tiles of every latent (each (1,C,H,W)) and merge the outputs per latent.

    Tiles of equal shape from all latents share batches of ``tiling.tile_batch_size``, so several jobs fill
    one UNet call.
    """
    import torch

    plans = [plan_tiles(z.shape[-2], z.shape[-1], tiling.tile_size, tiling.tile_stride) for z in latents]
    total = sum(len(p) for p in plans)
    outputs = [torch.zeros_like(z, dtype=torch.float32) for z in latents]
    weights = [torch.zeros(z.shape[-2:], dtype=torch.float32, device=z.device) for z in latents]
    timesteps: list[list[float]] = [[0.0] * len(p) for p in plans]

    by_shape: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)  # shape -> (latent idx, tile idx)
    for i, plan in enumerate(plans):
        for j, tile_ in enumerate(plan):
            by_shape[(tile_.h, tile_.w)].append((i, j))

    done = 0
    for (h, w), members in by_shape.items():
        window = gaussian_window(h, w)
        for start in range(0, len(members), tiling.tile_batch_size):
            chunk = members[start : start + tiling.tile_batch_size]
            batch = torch.cat([latents[i][(..., *plans[i][j].slices)] for i, j in chunk])  # (B, C, h, w)
            clean, t = step(batch)
            for k, (i, j) in enumerate(chunk):
                ys, xs = plans[i][j].slices
                win = window.to(outputs[i].device)
                if len(plans[i]) == 1:  # one tile: no blending, and no rounding from weighting
                    win = torch.ones_like(win)
                outputs[i][..., ys, xs] += clean[k : k + 1].float() * win
                weights[i][ys, xs] += win
                timesteps[i][j] = float(t[k])
            done += len(chunk)
            if progress is not None:
                progress(done, total)

    results = []
    for i, z in enumerate(latents):
        merged = (outputs[i] / weights[i]).to(z.dtype)
        results.append(TiledResult(merged, plans[i], timesteps[i]))
    return results
