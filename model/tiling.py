"""Tiled latent inference (the supplement's Algorithm 1).

The latent is cut into overlapping tiles (96 with stride 64 by default, in latent pixels); every tile gets its
own timestep and its own one-step denoise; the clean tiles are merged with a Gaussian window. Tiles of several
latents (several jobs) are gathered and batched together through one step call: the batch size is a
performance knob and never changes a result.

Where the tiles go and how they are weighted is a :class:`TileLayout`, a property of the model (its
``tadm.json`` names it), not a knob:

* ``project`` (this project's models): tiles of ``min(tile_size, side)`` per axis at ``tile_stride``, a
  symmetric window; a latent not larger than one tile on either axis is one tile.
* ``official`` (imported checkpoints): what the authors' released inference does (``src/tadm_tile.py`` of
  github.com/wwangcece/TADM). A latent whose *area* fits one tile is one pass without a window; otherwise
  square tiles of ``s = min(tile_size, height, width)`` at stride ``s - overlap`` (``overlap = tile_size -
  tile_stride``: 32 with the defaults, their setting), the last one moved back to end at the border, merged
  with their window, whose row midpoint is ``s/2`` where the column midpoint is ``(s-1)/2``. Where their loop
  never ends (``s <= overlap``: a side of 32 latent pixels or less and an area above one tile) the stride is
  ``s * tile_stride // tile_size`` instead (two thirds of the tile with the defaults, as at full size).

:class:`Tiling` holds the three knobs and their defaults, once; the command line, the worker's settings and the
pipeline pass it whole, by the same field names. A model's preset may choose other tiles (``pipe.default_tiling``:
the nano models' are smaller, for CPU speed); the command line and the worker's settings override the knobs they
set and keep the model's default for the rest. This module imports torch only when it computes, so that the
service's settings (read by the API, which has no torch) can check their values with it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Tiling:
    """How the latent is cut into tiles and how many tiles share one step call, in latent pixels.

    ``tile_size`` and ``tile_stride`` decide the result (under the ``official`` layout ``tile_size`` is the
    largest square tile and ``tile_size - tile_stride`` the overlap); ``tile_batch_size`` is speed (and memory)
    only.
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

    def overridden(self, tile_size: int | None = None, tile_stride: int | None = None,
                   tile_batch_size: int | None = None) -> Tiling:
        """This tiling with the knobs that are given (not None) replaced: a model's default tiling under the
        command line's or the worker's settings. A combination that would leave gaps is refused (by the new
        tiling's own check)."""
        given = {"tile_size": tile_size, "tile_stride": tile_stride, "tile_batch_size": tile_batch_size}
        return replace(self, **{name: value for name, value in given.items() if value is not None})


def check_overrides(tile_size: int | None = None, tile_stride: int | None = None,
                    tile_batch_size: int | None = None) -> None:
    """Refuse, before any model is loaded, overrides that no model's default could make valid: a value below 1,
    or a stride above the tile size given with it. (A stride alone is checked against the model's tile size by
    :meth:`Tiling.overridden`.)"""
    for name, value in (("tile_size", tile_size), ("tile_stride", tile_stride), ("tile_batch_size", tile_batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"`{name}` must be >= 1 but is {value}")
    if tile_size is not None and tile_stride is not None:
        Tiling(tile_size=tile_size, tile_stride=tile_stride)  # its own check, with its message


# The paper's tiles (96 latent pixels at stride 64, an overlap of 32): the default of every model whose preset
# names no other (see model.backbones.Preset.tiling).
DEFAULT_TILING = Tiling()

# The nano preset's tiles. Smaller than the paper's: the self-attention, half of a CPU reconstruction, is
# quadratic in the tile. 80/64 keeps the tile count of 96/64 on common sizes and cut the attention by half for
# 0.01 dB PSNR-Y on 12 training photos (docs/training-log.md, 2026-12-02); Kodak is not used to
# choose. Defined here rather than in model.backbones so that the command line can name it in its help without
# importing torch and diffusers.
NANO_TILING = Tiling(tile_size=80, tile_stride=64)

# The nano 32x model's tiles. Its thumbnail is coarse: an 80-pixel latent tile sees 10x10 thumbnail pixels, a 128
# one 16x16 (the latent of the 512-px crops its stage 3 trained on last). On 12 training photos 128/96 scored
# +0.026 dB PSNR-Y over 80/64, the best of 80/64 ... 256/192 (docs/training-log.md, 2026-12-04); Kodak, measured
# afterwards, was not used to choose.
NANO_32X_TILING = Tiling(tile_size=128, tile_stride=96)


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


def _gaussian(n: int, mid: float, var: float) -> torch.Tensor:
    """StableSR's weights along one axis of n: a Gaussian of variance ``var`` relative to n², in float64."""
    import torch

    pos = torch.arange(n, dtype=torch.float64)
    return torch.exp(-((pos - mid) ** 2) / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)


def gaussian_window(h: int, w: int, var: float = 0.01) -> torch.Tensor:
    """Symmetric Gaussian weights (h, w) peaking at the tile centre; ``var`` is relative to the tile size."""
    import torch

    return torch.outer(_gaussian(h, (h - 1) / 2, var), _gaussian(w, (w - 1) / 2, var)).float()


def official_window(h: int, w: int, var: float = 0.01) -> torch.Tensor:
    """The authors' window (h, w): as :func:`gaussian_window` but with the row midpoint at h/2, not (h-1)/2."""
    import torch

    return torch.outer(_gaussian(h, h / 2, var), _gaussian(w, (w - 1) / 2, var)).float()


def plan_tiles_official(height: int, width: int, tile: int, stride: int) -> list[Tile]:
    """The tiles of the authors' released inference (see the module docstring) for a (height, width) latent."""
    if height * width <= tile * tile:
        return [Tile(0, 0, height, width)]
    side = min(tile, height, width)
    step = side - (tile - stride)
    if step <= 0:  # their loop would never end here
        step = max(1, side * stride // tile)
    return [Tile(y, x, side, side) for y in tile_starts(height, side, step) for x in tile_starts(width, side, step)]


@dataclass(frozen=True)
class TileLayout:
    """Where a model's tiles go (``plan(height, width, tile_size, tile_stride)``) and how they are weighted in
    the merge (``window(h, w)``). The layouts are named, and found by name, in :data:`model.layout.LAYOUTS`."""

    plan: Callable[[int, int, int, int], list[Tile]]
    window: Callable[[int, int], torch.Tensor]


PROJECT_TILES = TileLayout(plan_tiles, gaussian_window)
OFFICIAL_TILES = TileLayout(plan_tiles_official, official_window)


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
    layout: TileLayout = PROJECT_TILES,
) -> list[TiledResult]:
    """Run ``step`` over the tiles of every latent (each (1,C,H,W)) and merge the outputs per latent.

    Tiles of equal shape from all latents share batches of ``tiling.tile_batch_size``, so several jobs fill
    one UNet call. ``layout`` places and weights the tiles (the model's, see the module docstring).
    """
    import torch

    plans = [layout.plan(z.shape[-2], z.shape[-1], tiling.tile_size, tiling.tile_stride) for z in latents]
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
        window = layout.window(h, w)
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
