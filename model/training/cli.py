"""`tadm train STAGE`: one stage of the supplement's recipe; each stage writes a model directory.

Perceptual losses: stages 2 and 3 use LPIPS-VGG and DISTS (``--perceptual-loss lpips+dists``, the default).
Their pretrained VGG weights cannot always be had (no network, no torchvision); training then refuses to start
unless a substitute is chosen explicitly: ``--perceptual-loss lpips`` (LPIPS only) or ``none`` (pixel MSE only,
the weights of the other terms unchanged). The choice is recorded in the model's ``training.json``.

Loss weights: ``--loss-weight TERM=WEIGHT`` replaces one of the stage's weights (the supplement's by default), e.g.
to rebalance the other terms against pixel MSE once the perceptual ones are absent; training.json records them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model.thumbnail import SUPPORTED_SCALES

PERCEPTUAL_CHOICES = {"lpips+dists": ("lpips", "dists"), "lpips": ("lpips",), "none": ()}


# For --help only: the registry itself (model.training.stages) imports torch, which `tadm --help` must not.
STAGE_HELP = (
    "stage0: nano only, the VAE and UNet from scratch (AdamW 4e-4, halved every 8K, 20K iterations); "
    "stage1: the DFRM (Adam 2e-4, halved every 50K, 200K iterations); "
    "stage2: UNet LoRA + conv_in, VAE-decoder LoRA, TPM, refiner (AdamW 3e-4, halved every 15K, 50K); "
    "stage3: all of them jointly (AdamW 1e-5, 10K)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one stage (stage0 nano backbone, stage1 DFRM, stage2 enhancement, stage3 joint)",
        description="Train one stage. Under several GPUs or nodes, start it with `accelerate launch "
                    "[--multi_gpu --num_processes N] \"$(which tadm)\" train ...`. Defaults are the supplement's "
                    "recipe.",
    )
    p.add_argument("stage", help=STAGE_HELP)
    p.add_argument("--data", type=Path, nargs="+", required=True, help="image folders (recursive; PNG/JPEG/WebP)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="run folder: model/ (the result), checkpoints/, log.jsonl, validation/")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--init", type=Path, help="model directory to start from (the previous stage's OUTPUT/model)")
    start.add_argument("--preset", help="stage 1 only: start from a preset (sd21-base, nano, tiny)")
    p.add_argument("--base", default=None, help="SD 2.1-base location for --preset sd21-base")
    p.add_argument("--backbone", type=Path,
                   help="a model directory (any scale) whose VAE, UNet and empty prompt replace the start model's")
    p.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16)
    grow = p.add_argument_group(
        "G_d size", "grow the start model's G_d (the DFRM's thumbnail-to-latent decoder) before training, keeping "
                    "its outputs: new channels and Resblocks start silent and learn (model.training.widen)")
    grow.add_argument("--decoder-channels", type=int, help="G_d's width before its PixelShuffles")
    grow.add_argument("--decoder-res-blocks", type=int, help="G_d's Resblocks")
    grow.add_argument("--shuffle-channels", type=int, help="G_d's width between two PixelShuffles")
    grow_e = p.add_argument_group(
        "G_e size", "grow the start model's G_e (the DFRM's image-and-latent-to-thumbnail encoder) before training, "
                    "keeping its thumbnails: new channels and Resblocks start silent and learn (model.training.widen)")
    grow_e.add_argument("--encoder-channels", type=int, help="the width of G_e's latent branch (its fusion: "
                                                             "the pixel branch's width more)")
    grow_e.add_argument("--encoder-res-blocks", type=int, help="the Resblocks of G_e's latent branch and fusion")
    p.add_argument("--unet-lora-rank", type=int,
                   help="raise the start model's UNet LoRA rank to R before training, keeping its outputs (new "
                        "directions start at zero and learn; model.training.grow_lora)")
    p.add_argument("--iterations", type=int, help="optimiser steps (default: the stage's)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="end this run's training loop after that many seconds and write the model from the steps "
                        "done (training.json records them, with the planned --iterations); for a fixed time budget")
    p.add_argument("--lr", type=float, help="learning rate (default: the stage's)")
    p.add_argument("--lr-halve-every", type=int, help="halve the rate every N steps (default: the stage's)")
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="linear learning-rate warm-up over N steps (a fresh optimiser on trained weights)")
    p.add_argument("--ema-decay", type=parse_decay, default=None,
                   help="keep an exponential moving average of the trained weights (e.g. 0.995: over the last "
                        "~200 steps) and write it as the stage's model; checkpoints keep it (default: off)")
    p.add_argument("--batch-size", type=int, default=16, help="per process and micro-batch (default 16)")
    p.add_argument("--crop-size", type=int, default=512, help="square random crops (default 512)")
    p.add_argument("--hard-scenes", type=float, default=0.0, metavar="FRACTION",
                   help="turn this fraction of the crops into night, fog, high-key or out-of-focus scenes "
                        "(model.training.scenes; default 0)")
    p.add_argument("--gradient-accumulation", type=int, default=1)
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--checkpoints-kept", type=int, default=3)
    p.add_argument("--validate-every", type=int, default=1000, help="0 disables validation images")
    p.add_argument("--validation-images", type=Path, nargs="*", default=[])
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument("--loss-weight", dest="loss_weights", action="append", type=parse_loss_weight, default=[],
                   metavar="TERM=WEIGHT",
                   help="replace one of the stage's loss weights, by term name (repeatable; e.g. latent=0.25; "
                        "the terms and their defaults are in training.json's loss_weights)")
    p.add_argument("--perceptual-loss", choices=sorted(PERCEPTUAL_CHOICES), default="lpips+dists",
                   help="stages 2-3: the supplement's lpips+dists, or an explicit substitute: lpips, none (pixel-only)")
    p.add_argument("--cache-latents", type=Path, help="folder for cached VAE latents (crops snap to a 64 px grid)")
    p.add_argument("--num-workers", type=int, default=2, help="data loader processes")
    p.add_argument("--skip-stage-check", action="store_true",
                   help="allow --init from a model that the previous stage did not write")
    p.set_defaults(handler=_train)


def parse_loss_weight(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TERM=WEIGHT (e.g. latent=0.25), got {text!r}") from None


def parse_decay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a decay between 0 and 1 (exclusive), e.g. 0.995; got {text!r}")
    return value


def perceptual_names(choice: str, uses_perceptual: bool) -> tuple[str, ...]:
    """The stage's perceptual loss terms; a one-line error, before anything is written, when a package or its
    weights are missing (the trainer loads them later on each process's own device)."""
    from model.cli import CommandError
    from model.evaluation import perceptual

    if not uses_perceptual:
        return ()
    names = PERCEPTUAL_CHOICES[choice]
    for name in names:
        reason = perceptual.unavailable_reason(name)
        if reason is not None:
            raise CommandError(
                f"the {name.upper()} loss cannot be built: {reason}. Provide it, or choose a substitute "
                "explicitly with --perceptual-loss lpips|none (none = pixel MSE only)"
            )
    return names


def _train(args: argparse.Namespace) -> int:
    from model.backbones import BaseModelNotFoundError
    from model.checkpoints import ModelDirectoryError
    from model.cli import CommandError

    from .stages import get_stage
    from .trainer import TrainConfig, TrainingSetupError, train

    try:
        stage = get_stage(args.stage)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    config = TrainConfig(
        stage=args.stage, output_dir=args.output, data_dirs=args.data, init=args.init, preset=args.preset,
        random_init=stage.name == "stage0",  # stage 0 exists to train the backbone from scratch
        scale=args.scale, base=args.base, backbone=args.backbone, iterations=args.iterations,
        decoder_channels=args.decoder_channels, decoder_res_blocks=args.decoder_res_blocks,
        shuffle_channels=args.shuffle_channels, unet_lora_rank=args.unet_lora_rank,
        encoder_channels=args.encoder_channels, encoder_res_blocks=args.encoder_res_blocks,
        max_seconds=args.max_seconds, lr=args.lr,
        halve_every=args.lr_halve_every, warmup_steps=args.warmup_steps, ema_decay=args.ema_decay,
        batch_size=args.batch_size, crop_size=args.crop_size, hard_scenes=args.hard_scenes,
        gradient_accumulation=args.gradient_accumulation,
        mixed_precision=args.mixed_precision, max_grad_norm=args.max_grad_norm,
        checkpoint_every=args.checkpoint_every, checkpoints_kept=args.checkpoints_kept,
        validate_every=args.validate_every, validation_images=args.validation_images, log_every=args.log_every,
        seed=args.seed, resume=args.resume,
        perceptual=perceptual_names(args.perceptual_loss, stage.uses_perceptual),
        loss_weights=dict(args.loss_weights),
        cache_latents=args.cache_latents, num_workers=args.num_workers,
        check_previous_stage=not args.skip_stage_check,
    )
    try:
        model_dir = train(config)
    except (TrainingSetupError, ModelDirectoryError, BaseModelNotFoundError, FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"{stage.name} done: model directory {model_dir}")  # noqa: T201
    return 0
