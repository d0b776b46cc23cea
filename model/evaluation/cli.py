"""`tadm eval` (a model or the baselines over a folder) and `tadm eval-timesteps` (the TPM diagnostic)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model.cli import (
    add_attention_pool_arg,
    add_model_args,
    add_tiling_args,
    apply_attention_pool,
    check_tiling_args,
    parse_shard,
    tiling_from_args,
)
from model.thumbnail import SUPPORTED_SCALES
from model.thumbnail_bound import DEFAULT_MAX_DEVIATION

logger = logging.getLogger(__name__)

DEFAULT_METHODS = "bicubic,jpeg,webp,avif"  # and jxl where the pillow-jxl-plugin wheel is installed
MODEL_METHODS = ("model", "direct")  # the full receiver; G_d's latent decoded without the diffusion step


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a model and/or the baselines on a folder of images")
    p.add_argument("data", type=Path, help="folder of HR images (recursive: PNG, JPEG, WebP)")
    p.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16)
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated: model, direct, bicubic, jpeg, webp, avif, jxl (default {DEFAULT_METHODS}); "
                        "`direct` decodes G_d's latent without the diffusion step")
    p.add_argument("--direct-model", type=Path, default=None,
                   help="model directory for the `direct` method (e.g. the stage-1 model; default: the --model)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the CSV, table, plot and crops")
    p.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images (sorted)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="evaluate only the I-th (from 0) of N parts of the photos, even in pixels, to run N processes "
                        "side by side; join their results with scripts/join_eval_results.py")
    p.add_argument("--crops", type=int, default=3, help="side-by-side crops for the first N images (default 3)")
    p.add_argument("--budget", choices=("bicubic", "model"), default="bicubic",
                   help="the codecs' byte budget: the bicubic thumbnail PNG (default) or the model's thumbnail PNG")
    p.add_argument("--budget-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="the codecs' byte budget per photo: the model's bytes in an earlier results-<scale>x.json "
                        "of the same photos (adds codecs to a model evaluation without running the model again)")
    p.add_argument("--no-perceptual", action="store_true", help="skip LPIPS/DISTS/MUSIQ/CLIPIQA even if present")
    p.add_argument("--thumbnail-max-deviation", type=float, default=DEFAULT_MAX_DEVIATION, metavar="LEVELS",
                   help="with `model`: the bound verified ingest holds a thumbnail to (worst 4x4 block, 8-bit "
                        f"levels; default {DEFAULT_MAX_DEVIATION:g}, the service's). The model is also scored as "
                        "the service stores it, `tadm-<preset>-bounded`: its thumbnail pulled in where beyond")
    p.add_argument("--learned", action="store_true",
                   help="with `model`: the rescaler's thumbnail on every photo, the model's plain rule off (what "
                        "the learned thumbnail alone gives on the photos the rule would make plain)")
    p.add_argument("--no-colour-map", action="store_true",
                   help="with `model`: store no colour map in the thumbnails (by default the sender fits one where "
                        "it helps, as verified ingest does; model.colour_map)")
    add_tiling_args(p)
    add_attention_pool_arg(p)  # with `model`
    add_model_args(p)
    p.set_defaults(handler=_eval)

    p = sub.add_parser("eval-timesteps", help="heat maps of the TPM's t and the aligned t* per latent tile")
    p.add_argument("image", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    p.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16)
    add_tiling_args(p, batch=False)
    add_model_args(p)
    p.set_defaults(handler=_timesteps)


def _parse_methods(text: str) -> list[str]:
    from model.cli import CommandError

    from .baselines import BASELINES

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = sorted(set(methods) - {*MODEL_METHODS, *BASELINES})
    if unknown or not methods:
        raise CommandError(f"--methods: unknown {unknown or 'empty list'}; "
                           f"choose from {', '.join(MODEL_METHODS)}, {', '.join(BASELINES)}")
    return methods


def _eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from model.cli import CommandError

    from . import baselines, codecs, per_photo, report
    from .evaluate import (
        PerceptualScorer,
        bounded_reconstruction,
        evaluate,
        list_images,
        model_reconstruction,
        shard_by_pixels,
    )

    methods = _parse_methods(args.methods)
    check_tiling_args(args)
    if args.thumbnail_max_deviation < 0:
        raise CommandError(f"--thumbnail-max-deviation must be at least 0 levels, not {args.thumbnail_max_deviation:g}")
    try:
        paths = list_images(args.data, args.max_images)
        if args.shard is not None:
            paths = shard_by_pixels(paths, *parse_shard(args.shard))
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if not paths:
        raise CommandError(f"--shard {args.shard}: this part holds no photo ({args.data} has fewer photos than parts)")
    for name in methods:
        if name in codecs.CODECS and not codecs.codec_available(name):
            raise CommandError(f"this Pillow cannot encode {name}; drop it from --methods")
    pipe = direct_pipe = tiling = None
    if "model" in methods or ("direct" in methods and args.direct_model is None):
        if args.model is None and args.preset is None:
            raise CommandError("the `model` and `direct` methods need --model DIR or --preset NAME")
        from model.cli import load_pipeline

        pipe = load_pipeline(args, args.scale)
        tiling = tiling_from_args(args, pipe.default_tiling)
        apply_attention_pool(args, pipe)
    if "direct" in methods:
        direct_pipe = pipe if args.direct_model is None else _load_model_dir(args.direct_model, args)
    elif args.direct_model is not None:
        raise CommandError("--direct-model is for the `direct` method; add it to --methods")
    # scored as the worker serves them (LoRA merged: speed only, results within 5e-4, model.performance)
    from model.performance import optimize_for_serving

    for loaded in {id(p): p for p in (pipe, direct_pipe) if p is not None}.values():
        optimize_for_serving(loaded)
        if args.learned:
            loaded.plain_rule = None
    if args.budget == "model" and "model" not in methods:
        raise CommandError("--budget model needs the `model` method")
    budgets = None
    if args.budget_from is not None:
        if args.budget == "model":
            raise CommandError("--budget-from replaces --budget model; give one of them")
        try:
            budgets = per_photo.model_bytes(args.budget_from, args.scale, [p.name for p in paths])
        except ValueError as exc:
            raise CommandError(f"--budget-from: {exc}") from exc
    wanted_baselines = tuple(m for m in methods if m not in MODEL_METHODS)
    colour_map = not args.no_colour_map

    def run_methods(path, image):
        recs = []
        if "model" in methods:
            learned = model_reconstruction(pipe, image, tiling=tiling, colour_map=colour_map)
            recs = [learned, bounded_reconstruction(pipe, image, learned, args.thumbnail_max_deviation, tiling,
                                                    colour_map)]
        if direct_pipe is not None:
            recs.append(model_reconstruction(direct_pipe, image, direct=True))
        budget = recs[0].stored_bytes if args.budget == "model" else budgets[path.name] if budgets else None
        return recs + (baselines.run_baselines(image, args.scale, wanted_baselines, budget) if wanted_baselines else [])

    args.output.mkdir(parents=True, exist_ok=True)
    crops_dir = args.output / "crops"
    crops_left = [args.crops]

    def save_crops(path, image, recs):
        if crops_left[0] > 0:
            crops_dir.mkdir(exist_ok=True)
            sheet = report.side_by_side(image, [(r.method, r.image) for r in recs])
            sheet.save(crops_dir / f"{path.stem}-{args.scale}x.png")
            crops_left[0] -= 1

    device = next((p.device.type for p in (pipe, direct_pipe) if p is not None), "cpu")
    scorer = None if args.no_perceptual else PerceptualScorer(device=device)
    rows = []
    part = f" (part {args.shard})" if args.shard else ""
    title = f"{args.data.name}{part}, {len(paths)} images, {args.scale}x"
    for done, image_rows in enumerate(tqdm(evaluate(paths, args.scale, run_methods, scorer, save_crops),
                                           total=len(paths), unit="image", desc=f"eval {args.scale}x"), 1):
        rows.extend(image_rows)
        if done < len(paths):  # an evaluation of large photos runs for hours: what is done so far survives a stop
            per_photo.write(rows, f"{args.data.name}, {done} of {len(paths)} images, {args.scale}x", args.scale,
                            args.output)

    stem = f"results-{args.scale}x"
    report.write_csv(rows, args.output / f"{stem}.csv")
    table = report.markdown_table(rows, title)
    if scorer is not None and scorer.absent:
        table += "\n" + "".join(f"- {name} absent: {why}\n" for name, why in scorer.absent.items())
    (args.output / f"{stem}.md").write_text(table)
    per_photo.write(rows, title, args.scale, args.output)  # results-<scale>x.json and photos-<scale>x.md
    report.rd_plot(rows, args.output / f"rd-{args.scale}x.png", title)
    print(table)  # noqa: T201
    if per_photo.model_method(rows):  # the model against bicubic, alone and as verified ingest stores it
        print(per_photo.markdown(rows).split("\n\n")[-1], end="")  # noqa: T201
    return 0


def _load_model_dir(path: Path, args: argparse.Namespace):
    """A second model (the `direct` method's) on the same device; a one-line error when it is not one."""
    from model.cli import load_pipeline

    return load_pipeline(argparse.Namespace(model=path, preset=None, device=args.device), args.scale)


def _timesteps(args: argparse.Namespace) -> int:
    from model.cli import CommandError

    from .diagnostic import plot_timestep_maps, timestep_maps

    if not args.image.is_file():
        raise CommandError(f"no such image: {args.image}")
    if args.model is None and args.preset is None:
        raise CommandError("give --model DIR or --preset NAME")
    from model.cli import load_pipeline

    check_tiling_args(args)
    pipe = load_pipeline(args, args.scale)
    tiling = tiling_from_args(args, pipe.default_tiling)
    maps = timestep_maps(pipe, args.image, tiling)
    plot_timestep_maps(maps, args.output, title=f"{args.image.name}, {pipe.scale}x, model {pipe.model_id}")
    print(f"{args.output}: {len(maps.predicted.flatten())} tiles, Pearson r(t, t*) = {maps.correlation:.3f}")  # noqa: T201
    return 0
