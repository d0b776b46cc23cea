"""The timestep diagnostic (the supplement's Fig. 3): per latent tile, the TPM's predicted t
beside the "aligned" t* at which forward diffusion would degrade the clean latent as much as rescaling did.

t* solves ``(1 − √ᾱ_t)² · E[z²] + (1 − ᾱ_t) = MSE(ẑ, z)``: the expected squared error of ``x_t`` against ``z``
when ``x_t = √ᾱ_t z + √(1−ᾱ_t) ε``. The left side grows with t, so t* is read off by interpolation over the
base model's schedule (clamped to [0, T−1]). It is a diagnostic, not a training target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.pipeline import load_rgb, pil_to_tensor
from model.scheduler import alphas_cumprod
from model.tiling import Tiling


@dataclass
class TimestepMaps:
    predicted: np.ndarray  # (rows, cols) of tiles: the TPM's t
    aligned: np.ndarray  # (rows, cols): t*

    @property
    def correlation(self) -> float:
        """Pearson correlation of t and t* over the tiles (NaN with fewer than two tiles or no spread)."""
        p, a = self.predicted.flatten(), self.aligned.flatten()
        if p.size < 2 or p.std() == 0 or a.std() == 0:
            return math.nan
        return float(np.corrcoef(p, a)[0, 1])


def aligned_timestep(z_hat: torch.Tensor, z: torch.Tensor, acp: torch.Tensor) -> float:
    """t* for one latent (tile): degraded ``z_hat`` against clean ``z``, ``acp`` the schedule's ᾱ."""
    mse = float(((z_hat.double() - z.double()) ** 2).mean())
    energy = float((z.double() ** 2).mean())
    curve = (1 - acp.sqrt()) ** 2 * energy + (1 - acp)  # increasing in t
    return float(np.interp(mse, curve.numpy(), np.arange(len(acp), dtype=np.float64)))


@torch.inference_mode()
def timestep_maps(pipe, image, tiling: Tiling | None = None) -> TimestepMaps:
    """Encode the HR image (clean latent z), rescale it (degraded ẑ), and compare t with t* on every tile
    (the tiles of ``tiling``'s size and stride, default the model's, as the receiver cuts them)."""
    tiling = tiling or pipe.default_tiling
    image = load_rgb(image)
    x = pipe.pad_image(pil_to_tensor(image).to(pipe.device))  # (1, 3, H', W'), as downscale pads it
    z = pipe.encode_latent(x)  # (1, 4, H'/8, W'/8)
    z_hat = pipe.thumbnail_to_latent(pipe.downscale(image, learned=True))
    schedule = pipe.config["noise_schedule"]
    acp = alphas_cumprod(schedule["beta_start"], schedule["beta_end"], schedule["num_train_timesteps"],
                         schedule["beta_schedule"])
    tiles = pipe.layout.tiles.plan(z.shape[-2], z.shape[-1], tiling.tile_size, tiling.tile_stride)
    rows, cols = sorted({t.y for t in tiles}), sorted({t.x for t in tiles})
    predicted, aligned = np.zeros((len(rows), len(cols))), np.zeros((len(rows), len(cols)))
    for tile in tiles:
        ys, xs = tile.slices
        r, c = rows.index(tile.y), cols.index(tile.x)
        predicted[r, c] = float(pipe.tpm(z_hat[..., ys, xs])[0])
        aligned[r, c] = aligned_timestep(z_hat[..., ys, xs].cpu(), z[..., ys, xs].cpu(), acp)
    return TimestepMaps(predicted, aligned)


def plot_timestep_maps(maps: TimestepMaps, path: Path, title: str = "") -> None:
    """Two heat maps side by side on one colour scale: predicted t and aligned t*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low = float(min(maps.predicted.min(), maps.aligned.min()))
    high = float(max(maps.predicted.max(), maps.aligned.max()))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, data, name in zip(axes, (maps.predicted, maps.aligned), ("TPM t", "aligned t*"), strict=True):
        shown = ax.imshow(data, cmap="viridis", vmin=low, vmax=max(high, low + 1e-6))
        ax.set_title(name)
        ax.set_xlabel("tile column")
        ax.set_ylabel("tile row")
    fig.colorbar(shown, ax=list(axes), shrink=0.8)
    fig.suptitle(f"{title}  (Pearson r = {maps.correlation:.3f})")
    fig.savefig(path, dpi=90)
    plt.close(fig)
