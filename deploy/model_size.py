"""Parameter counts and weight memory of a preset's components, as a Markdown table (for sizing workers).

    python deploy/model_size.py sd21-base [--scale 16]

Builds the preset with random weights (``pretrained=False``: no download, same sizes as the real model) on CPU.
Weight memory only: activations come on top and depend on the tile batch (see deploy/README.md, "Sizing").
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=("sd21-base", "nano", "tiny"))
    parser.add_argument("--scale", type=int, choices=(16, 32), default=16)
    args = parser.parse_args(argv)

    from model import TADMPipeline

    pipe = TADMPipeline.from_preset(args.preset, scale=args.scale, pretrained=False)
    out = sys.stdout
    out.write("| component | parameters (M) | of which LoRA (M) | weights on CUDA (MiB) | weights in fp32 (MiB) |\n")
    out.write("|---|---:|---:|---:|---:|\n")
    total = 0
    for name in ("unet", "vae", "dfrm", "tpm", "refiner"):
        params = list(getattr(pipe, name).named_parameters())
        count = sum(p.numel() for _, p in params)
        lora = sum(p.numel() for n, p in params if "lora_" in n)
        total += count
        # The small TADM modules always run in float32 (model.pipeline); UNet and VAE in the serving dtype.
        on_cuda = count * (2 if name in ("unet", "vae") else 4) / 2**20
        out.write(f"| {name} | {count / 1e6:.1f} | {lora / 1e6:.1f} | {on_cuda:.0f} | {count * 4 / 2**20:.0f} |\n")
    out.write(f"| total | {total / 1e6:.1f} | | | {total * 4 / 2**20:.0f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
