"""Which loss term drives which parameters: each weighted term's gradient, per module, on a few training crops.

    python -m model.training.term_gradients model/weights/nano-16x --data ~/.cache/tadm/photos/images \
        --stage stage3 --crops 6 --crop-size 320

For every term the stage weights, the gradient of (weight x term) with respect to the stage's trainable
parameters, averaged over the crops (the direction a large batch would take), is reported per module (``dfrm``,
``unet``, ...): its norm, and its cosine with the ``mse`` term's (the image fidelity that PSNR scores). A term whose
gradient outweighs the image's on a module, or points away from it, is what ``tadm train --loss-weight`` is for.
The crops are random (seeded) squares of the photographs, as in training; the quantisation noise is seeded per crop.
A term the stage computes at weight 0 (``lr_worst``) is reported at weight 1: what turning it on would add per unit.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

from model.pipeline import TADMPipeline

from . import stages
from .data import find_images

REFERENCE_TERM = "mse"


def random_crop(path: Path, size: int, rng: random.Random) -> torch.Tensor:
    """A (1,3,size,size) crop in [-1, 1]; the whole image, cut to a square, when it is smaller."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    size = min(size, *image.size)
    left, top = rng.randrange(image.width - size + 1), rng.randrange(image.height - size + 1)
    pixels = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None] / 127.5 - 1


def term_gradients(pipe: TADMPipeline, stage_name: str, crops: list[torch.Tensor]) -> dict[str, dict[str, dict]]:
    """{module: {term: {"norm": |mean gradient|, "cosine": cosine with the reference term's}}}."""
    stage = stages.get_stage(stage_name)
    params = stage.trainable(pipe)
    stages.set_trainable(pipe, params)
    modules = sorted({name.split(".", 1)[0] for name in params})
    totals: dict[str, dict[str, torch.Tensor]] = {}
    for index, x in enumerate(crops):
        with torch.no_grad():
            z = pipe.encode_latent(x)
        torch.manual_seed(index)  # the quantisation noise
        terms = stage.loss(pipe, x, z, None, stage.loss_weights)
        weighted = [name for name in stage.loss_weights if name in terms]
        for term in weighted:
            weight = stage.loss_weights[term] or 1.0  # a term that is off: what one unit of it would add
            grads = torch.autograd.grad(weight * terms[term], list(params.values()),
                                        retain_graph=True, allow_unused=True)
            for module in modules:
                flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                  for (name, p), g in zip(params.items(), grads, strict=True)
                                  if name.split(".", 1)[0] == module])
                per_term = totals.setdefault(module, {})
                per_term[term] = per_term.get(term, 0) + flat / len(crops)
    report: dict[str, dict[str, dict]] = {}
    for module, per_term in totals.items():
        reference = per_term.get(REFERENCE_TERM)
        report[module] = {}
        for term, grad in per_term.items():
            cosine = None
            if reference is not None and grad.norm() > 0 and reference.norm() > 0:
                cosine = float(torch.nn.functional.cosine_similarity(grad, reference, dim=0))
            report[module][term] = {"norm": float(grad.norm()), "cosine": cosine}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.training.term_gradients",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model directory")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="training image folders (never Kodak)")
    parser.add_argument("--stage", default="stage3", help="the stage whose loss and parameters (default stage3)")
    parser.add_argument("--crops", type=int, default=6, help="random crops averaged over (default 6)")
    parser.add_argument("--crop-size", type=int, default=320, help="square crop side in pixels (default 320)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # on the shared 2 cores one thread is faster (see scripts/train_nano.sh)
    pipe = TADMPipeline.from_pretrained(args.model)
    pipe.to("cpu", torch.float32)
    rng = random.Random(args.seed)
    paths = find_images(args.data)
    crops = [random_crop(rng.choice(paths), args.crop_size, rng) for _ in range(args.crops)]
    report = term_gradients(pipe, args.stage, crops)
    print(f"{args.stage} of {args.model}: weighted terms' mean gradients over {args.crops} crops of "  # noqa: T201
          f"{args.crop_size} px (cosine: with the {REFERENCE_TERM} term's)")
    for module, per_term in report.items():
        cells = [f"{term} |g| {row['norm']:.4g}" + (f" cos {row['cosine']:+.2f}" if row["cosine"] is not None else "")
                 for term, row in per_term.items()]
        print(f"  {module:8} " + "; ".join(cells))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
