"""A model directory from a running stage's checkpoints, so that a long run can be evaluated while it trains.

    python -m model.training.from_checkpoint stage3 model/weights/nano-32x RUN/stage3/checkpoints/step-00000500 -o OUT
    python -m model.training.from_checkpoint stage3 START CKPT_A CKPT_B CKPT_C -o OUT   # their mean

A checkpoint holds only the tensors its stage trains (:mod:`.checkpointing`); the rest (the frozen VAE encoder and
UNet, the shapes) come from ``START``, the model directory the stage started from (or the one it wrote: the
stage changes none of the others). Given several checkpoints, the model gets the mean of their tensors, a cheap
stand-in for an average of the weights over the last steps. ``tadm eval --model OUT`` then scores it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from model.pipeline import TADMPipeline

from . import stages
from .checkpointing import TrainingSetupError, read_trainable


def model_from_checkpoints(stage_name: str, start: Path, checkpoints: list[Path], output: Path) -> TADMPipeline:
    """``start`` with ``stage_name``'s trainable tensors replaced by their mean over ``checkpoints``; saved to
    ``output`` and returned."""
    if not checkpoints:
        raise TrainingSetupError("no checkpoint given")
    pipe = TADMPipeline.from_pretrained(start)
    pipe.to("cpu", torch.float32)
    params = stages.get_stage(stage_name).trainable(pipe)
    saved = []
    for checkpoint in checkpoints:
        if not (checkpoint / "trainable.safetensors").is_file():
            raise TrainingSetupError(f"{checkpoint} is not a checkpoint (no trainable.safetensors)")
        saved.append(read_trainable(checkpoint, params, owner=f" than {stage_name} of {start}"))
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(torch.stack([tensors[name].float() for tensors in saved]).mean(0))
    for module in pipe.modules:
        module.eval()
    pipe.save_pretrained(output)
    return pipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.training.from_checkpoint",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", help="the stage that wrote the checkpoints (stage0 ... stage3)")
    parser.add_argument("start", type=Path, help="the model directory the stage started from (or wrote)")
    parser.add_argument("checkpoints", type=Path, nargs="+", help="RUN/stageN/checkpoints/step-N folders")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the model directory to write")
    args = parser.parse_args(argv)
    try:
        pipe = model_from_checkpoints(args.stage, args.start, args.checkpoints, args.output)
    except (TrainingSetupError, ValueError, FileNotFoundError) as exc:
        print(f"from_checkpoint: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    print(f"wrote {args.output} (model id {pipe.model_id}) from {', '.join(c.name for c in args.checkpoints)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
