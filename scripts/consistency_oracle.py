#!/usr/bin/env python
"""Where a model with a thumbnail-consistency step loses to bicubic: its low frequencies or its detail.

For each photo, PSNR-Y (dB) of:

* ``bicubic``: bicubic upsampling of a plain thumbnail of the same size;
* ``served``: the model's learned thumbnail reconstructed as served (the step's low frequencies and gate);
* ``no_detail``: the same with the gate shut (the step's low frequencies alone);
* ``true_low``: the step's gate and the decoder's detail over the photo's *own* bicubic thumbnail instead of the
  step's estimate of it, an oracle the receiver does not have: how far the model would get if the low frequencies
  were right;
* ``true_low_all_detail``: the same with every bit of the decoder's detail kept (gate open);
* ``fitted_low``: the step's estimate passed through the 3x4 colour map (a matrix and an offset, 12 numbers) that
  best fits it to the photo's bicubic thumbnail by least squares: what a sender that reconstructs the thumbnail
  could tell the receiver in 12 numbers;
* ``colour_map``: as served with the colour map the sender stores (:mod:`model.colour_map`: fitted over the
  photo's pixels rather than its thumbnail's, and kept only where it raises PSNR-Y);
* ``gridK_low``: like ``fitted_low`` with a colour map that varies over the photo: one per point of a K x K
  lattice spanning the thumbnail, blended bilinearly (12 K² numbers), fitted together by least squares;
* ``lattice``: as served with the colour map and the lattice of colour offsets the sender stores
  (:mod:`model.colour_lattice`, its size chosen by gain against bytes; ``lattice_bytes``: what it adds to the file,
  0 for none), and ``latticeK``: the same with only the lattice of K points along the longer side tried;

and the thumbnails' PSNR (RGB, dB) against the photo's bicubic thumbnail: the reconstruction's own (``own_thumb``)
the step's corrected one (``step_thumb``) and that through the fitted colour map (``fitted_thumb``). The model's plain rule is not applied (every photo gets the learned
thumbnail), so photos the rule makes plain can be looked at too.

    scripts/consistency_oracle.py --model model/weights/nano-32x PHOTO... [--json OUT] [--threads N] [--tile-size T --tile-stride S]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.cli import add_tiling_args, tiling_from_args  # noqa: E402
from model.colour_lattice import LATTICE_POINTS, metadata_bytes  # noqa: E402
from model.colour_map import choose_colour_map  # noqa: E402
from model.consistency import combine, down, pad_to_scale  # noqa: E402
from model.evaluation.metrics import psnr, rgb_to_y  # noqa: E402
from model.image_tensors import pil_to_tensor, tensor_to_uint8  # noqa: E402
from model.pipeline import TADMPipeline  # noqa: E402
from model.plain_rule import bicubic_psnr_y  # noqa: E402

# The lattices of colour maps tried beside the one map for the whole photo (grid 1).
GRIDS = (2, 3, 4, 6)


def thumbnail_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between two thumbnails in [-1, 1]."""
    return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))


def grid_weights(h: int, w: int, grid: int) -> torch.Tensor:
    """(grid², h, w): bilinear weights of a grid x grid lattice of points spanning an h x w image corner to corner
    (one point, weight 1 everywhere, for ``grid`` 1)."""
    if grid == 1:
        return torch.ones(1, h, w, dtype=torch.float64)
    points = torch.arange(grid, dtype=torch.float64)[:, None]
    along_h = (1 - (torch.linspace(0, grid - 1, h, dtype=torch.float64)[None] - points).abs()).clamp(min=0)
    along_w = (1 - (torch.linspace(0, grid - 1, w, dtype=torch.float64)[None] - points).abs()).clamp(min=0)
    return (along_h[:, None, :, None] * along_w[None, :, None, :]).reshape(grid * grid, h, w)


def fitted_colour_map(estimate: torch.Tensor, target: torch.Tensor, grid: int = 1) -> torch.Tensor:
    """``estimate`` (1,3,h,w) through the affine colour map that brings it closest to ``target`` (least squares):
    one map for the whole image (``grid`` 1: 12 numbers), or one per point of a grid x grid lattice, blended
    bilinearly between them (12 grid² numbers)."""
    h, w = estimate.shape[-2:]
    pixels = torch.cat((estimate[0].double(), torch.ones(1, h, w, dtype=torch.float64)))  # (4, h, w)
    features = (grid_weights(h, w, grid)[:, None] * pixels[None]).reshape(-1, h * w).T  # (h w, 4 grid²)
    solution = torch.linalg.lstsq(features, target[0].reshape(3, -1).T.double(), driver="gelsd").solution
    return (features @ solution).T.reshape(estimate.shape).to(estimate.dtype)


@torch.inference_mode()
def measure(pipe: TADMPipeline, photo: Image.Image, tiling=None) -> dict[str, float]:
    step = pipe.consistency
    if step is None:
        raise SystemExit(f"the model {pipe.model_id} has no consistency step")
    scale = pipe.scale
    original = np.asarray(photo)
    thumbnail = pipe.downscale(photo, learned=True)
    (result,) = pipe.denoise([pipe.thumbnail_to_latent(thumbnail)], tiling)
    # the decoder's output as served, before the step: cropped and in 8-bit levels
    decoded = pil_to_tensor(pipe.latent_to_image(result.latent, thumbnail.original_size))
    own = step.own_thumbnail(decoded)
    r, gate = step(pil_to_tensor(thumbnail.image), own)
    true = down(pad_to_scale(pil_to_tensor(photo), scale), scale)
    fitted = fitted_colour_map(own + r, true)
    _, with_map = choose_colour_map(step, thumbnail, decoded, photo, lattice_points=())
    stored, with_lattice = choose_colour_map(step, thumbnail, decoded, photo)
    lattices = {f"lattice{k}": psnr(rgb_to_y(original), rgb_to_y(np.asarray(
        choose_colour_map(step, thumbnail, decoded, photo, lattice_points=(k,))[1]))) for k in LATTICE_POINTS}

    def psnr_y(low: torch.Tensor, g: torch.Tensor) -> float:
        rebuilt = tensor_to_uint8(combine(decoded, low, own, g, scale))
        return psnr(rgb_to_y(original), rgb_to_y(rebuilt))

    grids = {f"grid{k}_low": psnr_y(fitted_colour_map(own + r, true, k), gate) for k in GRIDS}
    return {
        "bicubic": bicubic_psnr_y(original, scale),
        "served": psnr_y(own + r, gate),
        "no_detail": psnr_y(own + r, torch.zeros_like(gate)),
        "true_low": psnr_y(true, gate),
        "true_low_all_detail": psnr_y(true, torch.ones_like(gate)),
        "fitted_low": psnr_y(fitted, gate),
        "colour_map": psnr(rgb_to_y(original), rgb_to_y(np.asarray(with_map))),
        **grids,
        "lattice": psnr(rgb_to_y(original), rgb_to_y(np.asarray(with_lattice))),
        "lattice_bytes": metadata_bytes(stored.colour_lattice) if stored.colour_lattice else 0,
        **lattices,
        "own_thumb": thumbnail_psnr(own, true),
        "step_thumb": thumbnail_psnr(own + r, true),
        "fitted_thumb": thumbnail_psnr(fitted, true),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("photos", nargs="+", type=Path)
    p.add_argument("--model", required=True, type=Path, help="model directory with a consistency step")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    add_tiling_args(p, batch=False)
    args = p.parse_args(argv)
    missing = [str(path) for path in args.photos if not path.is_file()]
    if missing:
        p.error(f"no such photo: {', '.join(missing)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = TADMPipeline.from_pretrained(args.model)
    tiling = tiling_from_args(args, pipe.default_tiling)
    rows = {}
    columns = ("bicubic", "served", "no_detail", "true_low", "true_low_all_detail", "fitted_low", "colour_map",
               *(f"grid{k}_low" for k in GRIDS), "lattice", "lattice_bytes",
               *(f"lattice{k}" for k in LATTICE_POINTS), "own_thumb",
               "step_thumb", "fitted_thumb")
    print("| photo | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for path in args.photos:
        with Image.open(path) as image:
            rows[path.stem] = measure(pipe, image.convert("RGB"), tiling)
        print(f"| {path.stem} | " + " | ".join(f"{rows[path.stem][c]:.2f}" for c in columns) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "model_id": pipe.model_id,
                                                    "tiles": f"{tiling.tile_size}/{tiling.tile_stride}", "photos": rows},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
