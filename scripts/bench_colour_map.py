#!/usr/bin/env python
"""What fitting the sender's colour map and lattice (model.colour_map, model.colour_lattice) adds to verified
ingest: the seconds from the denoised latent to the reconstruction, with them chosen (``finish_choosing_colour_map``:
decode, the consistency step, the map's least-squares fit, the lattices' fits, the reconstructions with and without
them and their PSNR-Y) against without (``latent_to_image``: decode and the step), side by side on the same latent,
at each size.

    scripts/bench_colour_map.py --model model/weights/nano-32x --sizes 2048x2048,3840x2160 --runs 3 --threads 2

The photo (default: a Kodak photograph) is scaled to cover each size and centre-cropped. The one-step diffusion
runs once per size, outside the timing (the map does not change it). Prints the medians of ``--runs`` calls and
their difference, the map's cost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench_common import REPO, cover_crop, median_seconds, parse_photo_args, parse_sizes
from bench_upscale import cpu_name

sys.path.insert(0, str(REPO))
from model.colour_map import finish_choosing_colour_map  # noqa: E402
from model.performance import optimize_for_serving  # noqa: E402
from model.pipeline import TADMPipeline  # noqa: E402


@torch.inference_mode()
def seconds_without_and_with(pipe: TADMPipeline, photo, runs: int) -> tuple[float, float]:
    """The medians of ``latent_to_image`` and of ``finish_choosing_colour_map`` on one denoised latent."""
    thumbnail = pipe.downscale(photo, learned=True)
    (result,) = pipe.denoise([pipe.thumbnail_to_latent(thumbnail)])
    without = median_seconds(lambda: pipe.latent_to_image(result.latent, photo.size, thumbnail), runs)
    mapped = median_seconds(lambda: finish_choosing_colour_map(pipe, thumbnail, result.latent, photo), runs)
    return without, mapped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "model" / "weights" / "nano-32x",
                   help="a model directory with a consistency step")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args, source = parse_photo_args(p, argv)
    torch.set_num_threads(args.threads)
    pipe = TADMPipeline.from_pretrained(args.model)
    if pipe.consistency is None:
        p.error(f"{args.model} has no consistency step: no colour map to fit")
    optimize_for_serving(pipe)  # as the worker runs it
    print(f"colour map, {args.model.name}, {args.threads} threads, on {cpu_name()}")
    for size in parse_sizes(args.sizes):
        photo = cover_crop(source, size)
        without, mapped = seconds_without_and_with(pipe, photo, args.runs)
        print(f"{size[0]}x{size[1]}: decode and step {without:.2f} s, with the colour map and lattice chosen {mapped:.2f} s "
              f"(+{mapped - without:.2f} s), medians of {args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
