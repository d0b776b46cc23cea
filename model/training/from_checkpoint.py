"""A model directory from a running stage's checkpoints, so that a long run can be evaluated while it trains.

    python -m model.training.from_checkpoint stage3 model/weights/nano-32x RUN/stage3/checkpoints/step-00000500 -o OUT
    python -m model.training.from_checkpoint stage3 START CKPT_A CKPT_B CKPT_C -o OUT   # their mean

A checkpoint holds only the tensors its stage trains (:mod:`.checkpointing`); the rest (the frozen VAE encoder and
UNet, the shapes) come from ``START``, the model directory the stage started from (or the one it wrote: the
stage changes none of the others); a run that raised the UNet LoRA rank (``--unet-lora-rank``) or grew G_d or G_e
(``--decoder-*``, ``--encoder-*``) has checkpoints of the larger shapes, and ``START`` is grown to them the way the
run grew it (their tensors then overwrite the new weights). Given several checkpoints, the model gets the mean of
their tensors, a cheap stand-in for an average of the weights over the last steps. A run that keeps one
(``tadm train --ema-decay``) has it in every checkpoint: ``--averaged`` takes that average instead of the
weights, as the stage will write its model. ``tadm eval --model OUT`` then scores it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from model.pipeline import TADMPipeline

from . import stages
from .checkpointing import TRAINABLE_FILE, TrainingSetupError, read_trainable
from .grow_lora import grow_unet_lora
from .weight_average import AVERAGED_FILE
from .widen import widen_decoder, widen_encoder


def model_from_checkpoints(stage_name: str, start: Path, checkpoints: list[Path], output: Path,
                          averaged: bool = False) -> TADMPipeline:
    """``start`` with ``stage_name``'s trainable tensors replaced by their mean over ``checkpoints`` (``averaged``:
    by the mean of the checkpoints' weight averages); saved to ``output`` and returned."""
    if not checkpoints:
        raise TrainingSetupError("no checkpoint given")
    pipe = TADMPipeline.from_pretrained(start)
    pipe.to("cpu", torch.float32)
    rank = checkpoint_unet_lora_rank(checkpoints[0])
    if rank is not None and rank > int(pipe.config["unet_lora_rank"]):
        grow_unet_lora(pipe, rank)  # the new A rows are overwritten by the checkpoint's
    sizes = checkpoint_dfrm_sizes(checkpoints[0])
    if sizes is not None:
        encoder, decoder = sizes
        if encoder != pipe.dfrm.encoder_shape:
            pipe.dfrm = widen_encoder(pipe.dfrm, channels=encoder[0], res_blocks=encoder[1])
        if decoder[:2] != pipe.dfrm.decoder_shape[:2] or decoder[2] not in (None, pipe.dfrm.decoder_shape[2]):
            pipe.dfrm = widen_decoder(pipe.dfrm, channels=decoder[0], res_blocks=decoder[1],
                                      shuffle_channels=decoder[2])
    params = stages.get_stage(stage_name).trainable(pipe)
    saved = []
    for checkpoint in checkpoints:
        if not (checkpoint / TRAINABLE_FILE).is_file():
            raise TrainingSetupError(f"{checkpoint} is not a checkpoint (no {TRAINABLE_FILE})")
        if averaged and not (checkpoint / AVERAGED_FILE).is_file():
            raise TrainingSetupError(f"{checkpoint} holds no weight average (its run had no --ema-decay)")
        saved.append(read_trainable(checkpoint, params, owner=f" than {stage_name} of {start}",
                                    file=AVERAGED_FILE if averaged else TRAINABLE_FILE))
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(torch.stack([tensors[name].float() for tensors in saved]).mean(0))
    for module in pipe.modules:
        module.eval()
    pipe.save_pretrained(output)
    return pipe


def checkpoint_unet_lora_rank(checkpoint: Path) -> int | None:
    """The UNet LoRA rank of a checkpoint's tensors (the rows of any UNet ``lora_A``), ``None`` if it has none."""
    path = checkpoint / TRAINABLE_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 (safe_open is not a mapping)
            if key.startswith("unet.") and ".lora_A." in key:
                return int(tensors.get_slice(key).get_shape()[0])
    return None


def checkpoint_dfrm_sizes(checkpoint: Path) -> tuple[tuple[int, int], tuple[int, int, int | None]] | None:
    """G_e's (channels, Resblocks) and G_d's (channels, Resblocks, width between shuffles) as a checkpoint's DFRM
    tensors have them, ``None`` if it holds no DFRM (stage 2). Between shuffles: the first ConvBlock after G_d's
    Resblocks writes that width; with a single shuffle there is none (``None``)."""
    path = checkpoint / TRAINABLE_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as tensors:
        shapes = {k.removeprefix("dfrm."): tensors.get_slice(k).get_shape() for k in tensors.keys()  # noqa: SIM118
                  if k.startswith("dfrm.")}
    if "final_module.0.conv_in.weight" not in shapes:
        return None

    def res_blocks(module: str) -> int:
        return len({k.split(".")[1] for k in shapes if k.startswith(f"{module}.") and ".res_block." in k})

    decoder_blocks = res_blocks("final_module")
    after_blocks = sorted(int(k.split(".")[1]) for k in shapes
                          if k.startswith("final_module.") and k.endswith(".conv_in.weight"))[1:]
    between = shapes[f"final_module.{after_blocks[0]}.conv_in.weight"][0] if len(after_blocks) > 1 else None
    encoder = (shapes["latent_module.0.conv_in.weight"][0], res_blocks("latent_module"))
    return encoder, (shapes["final_module.0.conv_in.weight"][0], decoder_blocks, between)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.training.from_checkpoint",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", help="the stage that wrote the checkpoints (stage0 ... stage3)")
    parser.add_argument("start", type=Path, help="the model directory the stage started from (or wrote)")
    parser.add_argument("checkpoints", type=Path, nargs="+", help="RUN/stageN/checkpoints/step-N folders")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the model directory to write")
    parser.add_argument("--averaged", action="store_true",
                        help="the checkpoints' weight averages (a run with --ema-decay), not their weights")
    args = parser.parse_args(argv)
    try:
        pipe = model_from_checkpoints(args.stage, args.start, args.checkpoints, args.output, args.averaged)
    except (TrainingSetupError, ValueError, FileNotFoundError) as exc:
        print(f"from_checkpoint: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    what = "the weight averages of " if args.averaged else ""
    print(f"wrote {args.output} (model id {pipe.model_id}) from {what}{', '.join(c.name for c in args.checkpoints)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
