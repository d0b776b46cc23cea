"""Training the receiver's thumbnail-consistency step (:mod:`model.consistency`) on a frozen model.

The rest of the model is not touched, so the training data is fixed: for every photo, the original, the model's
thumbnail of it and the model's reconstruction, made once through the pipeline's public ``downscale`` and
``upscale`` at full size (the VAE in one pass, as served) and kept as PNGs in a cache folder. Training then runs at
the photos' full size with the whole-image loss the module is judged by (PSNR of the corrected reconstruction),
which costs milliseconds a photo: the network works at the thumbnail's resolution.

    python -m model.training.consistency collect --model DIR --data PHOTOS... -o CACHE [--hard-scenes]
    python -m model.training.consistency train --model DIR --cache CACHE -o OUT_MODEL_DIR
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model import checkpoints
from model.cli import parse_shard
from model.consistency import (
    TRAINED_GATE_GAIN,
    TRAINED_GATE_START,
    ThumbnailConsistency,
    down,
    global_context,
    pad_to_scale,
    up,
)
from model.image_tensors import from_levels
from model.thumbnail import Thumbnail
from model.training.consistency_examples import Example, evaluate, load_examples
from model.training.data import find_images
from model.training.scenes import SCENES, hard_scene

# How the step in a model directory was trained (beside its weights, so it goes when the step is dropped).
RECORD_NAME = "training.json"
# A hard-scene variant's folder is named <photo>@<scene>: it is held out together with its photo.
VARIANT_MARK = "@"


def say(message: str) -> None:
    print(message, flush=True)  # noqa: T201


def _variant_scene(photo: str) -> str:
    return SCENES[_name_seed(photo) % len(SCENES)]


def variant_name(photo: str) -> str:
    """The hard-scene variant of a photo: ``<photo>@<scene>``, the scene chosen by the photo's name."""
    return f"{photo}{VARIANT_MARK}{_variant_scene(photo)}"


def hard_variant(image: Image.Image, photo: str) -> Image.Image:
    """The photo made its variant's scene (model.training.scenes), the strength drawn from a generator seeded by
    the photo's name, so a resumed or sharded collection makes the same variant."""
    return hard_scene(image, np.random.default_rng(_name_seed(photo)), _variant_scene(photo))[0]


def _name_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def source_photo(name: str) -> str:
    """The photo an example was made from: its own name, or the name before a variant's mark."""
    return name.split(VARIANT_MARK, 1)[0]


def collect(pipeline, photos: Sequence[Path], cache: Path, log=say, hard_scenes: bool = False) -> int:
    """Write ``cache/<photo>/{original,thumbnail,reconstruction}.png`` for every photo not there yet; returns how
    many were made. A photo is complete once its reconstruction exists (written last). With ``hard_scenes`` each
    photo also gets a hard-scene variant, ``cache/<photo>@<scene>/``: smooth, dark and hazy areas, where the step
    has the most to correct, are rare in the training photos themselves."""
    # The step corrects the decoder's own output: a model that already has one must not apply it here.
    pipeline = copy.copy(pipeline)
    pipeline.consistency = None
    made = 0
    for i, path in enumerate(photos, 1):
        names = [path.stem] + ([variant_name(path.stem)] if hard_scenes else [])
        missing = [n for n in names if not (cache / n / "reconstruction.png").exists()]
        if not missing:
            continue
        photo = Image.open(path).convert("RGB")
        for name in missing:
            image = photo if name == path.stem else hard_variant(photo, path.stem)
            start = time.perf_counter()
            _collect_one(pipeline, image, cache / name)
            made += 1
            log(f"[{i}/{len(photos)}] {name} {image.size[0]}x{image.size[1]} in {time.perf_counter() - start:.1f} s")
    return made


def _collect_one(pipeline, image: Image.Image, folder: Path) -> None:
    if (folder / "thumbnail.png").exists():  # an interrupted photo: its thumbnail is done (downscale is deterministic)
        thumbnail = Thumbnail(Image.open(folder / "thumbnail.png").convert("RGB"), pipeline.scale, image.size,
                              pipeline.model_id)
    else:
        thumbnail = pipeline.downscale(image, learned=True)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / "original.png")
        thumbnail.image.save(folder / "thumbnail.png")
    pipeline.upscale(thumbnail).save(folder / "reconstruction.png")


@dataclass
class Prepared:
    """An example on the scale's grid: the padded photo and reconstruction, and the reconstruction's own thumbnail."""

    example: Example
    original: torch.Tensor  # uint8, as the example's
    reconstruction: torch.Tensor
    own: torch.Tensor  # the reconstruction's bicubic thumbnail, in [-1,1]
    target: torch.Tensor  # the photo's
    context: torch.Tensor  # model.consistency.global_context of the whole thumbnails, for losses over a crop

    @classmethod
    def of(cls, example: Example, scale: int) -> Prepared:
        reconstruction, original = pad_to_scale(example.reconstruction, scale), pad_to_scale(example.original, scale)
        own, target = down(from_levels(reconstruction), scale), down(from_levels(original), scale)
        return cls(example, original, reconstruction, own, target, global_context(example.thumbnail, own))


def window_loss(module: ThumbnailConsistency, item: Prepared, ty: int, tx: int, c: int) -> torch.Tensor:
    """log MSE of the corrected reconstruction over the photo window of ``c`` x ``c`` thumbnail pixels at
    (``ty``, ``tx``) of the thumbnail grid, with exactly the whole-photo values inside: the network sees a margin of
    its reach (one thumbnail pixel a layer) more than bicubic upsampling does (two pixels)."""
    scale, reach = module.config.scale, module.config.num_layers
    th, tw = item.own.shape[-2:]

    def span(margin: int) -> tuple[int, int, int, int]:
        return max(0, ty - margin), max(0, tx - margin), min(th, ty + c + margin), min(tw, tx + c + margin)

    ny0, nx0, ny1, nx1 = span(BICUBIC_REACH + reach)
    r, g = module(item.example.thumbnail[..., ny0:ny1, nx0:nx1], item.own[..., ny0:ny1, nx0:nx1], item.context)
    y0, x0, y1, x1 = span(BICUBIC_REACH)
    inside = (..., slice(y0 - ny0, y1 - ny0), slice(x0 - nx0, x1 - nx0))
    own, r, g = item.own[..., y0:y1, x0:x1], r[inside], g[inside]
    size = ((y1 - y0) * scale, (x1 - x0) * scale)
    photo = (..., slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale))
    low = up(own, size)
    out = up(own + r, size) + up(g, size) * (from_levels(item.reconstruction[photo]) - low)
    iy, ix = (ty - y0) * scale, (tx - x0) * scale
    window = (..., slice(iy, iy + c * scale), slice(ix, ix + c * scale))
    mse = ((out[window] - from_levels(item.original[photo][window])) ** 2).mean()
    return torch.log(mse + LOG_FLOOR)


def thumbnail_loss(module: ThumbnailConsistency, item: Prepared, ty: int, tx: int, c: int) -> torch.Tensor:
    """log MSE between the corrected own thumbnail ``own + r`` and the photo's bicubic thumbnail over ``c`` x ``c``
    thumbnail pixels at (``ty``, ``tx``): the low frequencies alone, at a 256th of the full loss's cost (16x)."""
    reach = module.config.num_layers
    th, tw = item.own.shape[-2:]
    y0, x0, y1, x1 = max(0, ty - reach), max(0, tx - reach), min(th, ty + c + reach), min(tw, tx + c + reach)
    r, _ = module(item.example.thumbnail[..., y0:y1, x0:x1], item.own[..., y0:y1, x0:x1], item.context)
    inner = (..., slice(ty - y0, ty - y0 + c), slice(tx - x0, tx - x0 + c))
    own = item.own[..., ty:ty + c, tx:tx + c]
    mse = ((own + r[inner] - item.target[..., ty:ty + c, tx:tx + c]) ** 2).mean()
    return torch.log(mse + LOG_FLOOR)


# Bicubic upsampling reads two pixels either side.
BICUBIC_REACH = 2
# The log-MSE loss weighs every photo by its own error: a smooth photo whose reconstruction is at 45 dB counts as
# much as a textured one at 25 dB (a plain MSE would let the textured photos decide alone). The floor is 60 dB.
LOG_FLOOR = 4e-6


def bicubic_wins(item: Prepared, c: int) -> torch.Tensor:
    """(N, 2) thumbnail-grid corners (ty, tx) of the ``c`` x ``c`` windows in which bicubic upsampling of the photo's
    own thumbnail is closer to the photo than the reconstruction is: smooth areas, where the step must learn to
    trust the thumbnail over the decoder. Rare in ordinary photos, so :func:`train` can draw them on purpose."""
    scale = round(item.original.shape[-1] / item.own.shape[-1])
    original = from_levels(item.original)
    height, width = item.original.shape[-2:]
    bicubic = up(item.target, (height, width))
    errors = torch.cat((((from_levels(item.reconstruction) - original) ** 2).mean(1, keepdim=True),
                        ((bicubic - original) ** 2).mean(1, keepdim=True)))
    per_window = F.avg_pool2d(F.avg_pool2d(errors, scale), min(c, *item.own.shape[-2:]), stride=1)
    return torch.nonzero(per_window[1, 0] < per_window[0, 0])


def train(module: ThumbnailConsistency, examples: Sequence[Example], steps: int, lr: float, crop: int,
          seed: int = 0, batch: int = 8, log=say, low_steps: int = 0, low_crop: int = 32,
          smooth_share: float = 0.0) -> None:
    """Two phases of Adam on mean log MSEs, ``batch`` photos a step: ``low_steps`` on the thumbnails alone
    (``low_crop`` thumbnail pixels on a side: cheap, and it is what ``r`` is for), then ``steps`` on the corrected
    reconstruction over photo windows ``crop`` photo pixels on a side (the whole photo when
    smaller), aligned to the thumbnail's grid, which also teaches the gate. ``smooth_share`` of those windows are
    drawn among the ones where bicubic beats the reconstruction (:func:`bicubic_wins`), where a photo has any."""
    scale = module.config.scale
    rng = random.Random(seed)
    prepared = [Prepared.of(ex, scale) for ex in examples]
    if low_steps:
        _fit(module, prepared, thumbnail_loss, low_steps, lr, low_crop, batch, rng, log, "thumbnails")
    if steps:
        c = max(1, crop // scale)
        smooth = {id(item): bicubic_wins(item, c) for item in prepared} if smooth_share > 0 else {}
        if smooth:
            log(f"windows where bicubic wins: {sum(len(v) > 0 for v in smooth.values())} of {len(prepared)} photos")
        _fit(module, prepared, window_loss, steps, lr, c, batch, rng, log, "photo windows", smooth, smooth_share)


def _fit(module, prepared, loss_fn, steps, lr, c, batch, rng, log, what, smooth=None, smooth_share=0.0) -> None:
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    module.train()
    running = 0.0
    for step in range(1, steps + 1):
        losses = []
        for item in rng.sample(prepared, min(batch, len(prepared))):
            th, tw = item.own.shape[-2:]
            corners = smooth.get(id(item)) if smooth else None
            if corners is not None and len(corners) and rng.random() < smooth_share:
                ty, tx = (int(v) for v in corners[rng.randrange(len(corners))])
            else:
                ty, tx = rng.randint(0, max(0, th - c)), rng.randint(0, max(0, tw - c))
            losses.append(loss_fn(module, item, ty, tx, min(c, th - ty, tw - tx)))
        loss = torch.stack(losses).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running += loss.item()
        if step % 100 == 0 or step == steps:
            # as PSNR: the loss is a mean log MSE in [-1,1] units
            log(f"{what}: step {step}/{steps} mean PSNR {10 * math.log10(4) - 10 / math.log(10) * running / (step % 100 or 100):.2f} dB")
            running = 0.0
    module.eval()


def _collect_main(args: argparse.Namespace) -> int:
    from model.pipeline import TADMPipeline

    pipeline = TADMPipeline.from_pretrained(args.model, device="cpu")
    try:
        photos = find_images(args.data)
    except FileNotFoundError as exc:
        sys.exit(f"error: {exc}")
    if args.min_bicubic_psnr_y is not None:  # before sharding, so that the parts share the photos kept evenly
        photos = [path for path in photos if _bicubic_figure(path, pipeline.scale) >= args.min_bicubic_psnr_y]
        say(f"{len(photos)} photos that bicubic gives back at {args.min_bicubic_psnr_y:g} dB PSNR-Y or more")
    if args.shard:
        try:
            index, count = parse_shard(args.shard)
        except ValueError as exc:
            sys.exit(f"error: {exc}")
        photos = photos[index::count]
    made = collect(pipeline, photos, args.output, hard_scenes=args.hard_scenes)
    wanted = len(photos) * (2 if args.hard_scenes else 1)  # with --hard-scenes: a variant of each photo
    say(f"made {made} of {wanted}; the others were already there")
    return 0


def _bicubic_figure(path: Path, scale: int) -> float:
    from model.plain_rule import bicubic_psnr_y

    with Image.open(path) as opened:
        return bicubic_psnr_y(np.asarray(opened.convert("RGB")), scale)


def _train_main(args: argparse.Namespace) -> int:
    started = time.time()
    examples = load_examples(args.cache)
    sources = sorted({source_photo(ex.name) for ex in examples})
    if args.hold_out:
        held_out = set(named_photos(args.hold_out, sources))
        if len(held_out) == len(sources):
            sys.exit(f"error: {args.hold_out} holds out every photo collected in {args.cache}; none is left to train on")
    else:
        if len(sources) <= args.validation:
            sys.exit(f"error: {args.cache} holds {len(sources)} collected photos; collect more than --validation "
                     f"({args.validation})")
        rng = random.Random(args.seed)
        rng.shuffle(sources)
        held_out = set(sources[: args.validation])  # a photo's hard-scene variant is held out with it
    held = [ex for ex in examples if source_photo(ex.name) in held_out]
    fit = [ex for ex in examples if source_photo(ex.name) not in held_out]
    scale = int(checkpoints.read_config(args.model)["scale"]) if args.model else args.scale
    module = ThumbnailConsistency(scale=scale, channels=args.channels, num_layers=args.layers,
                                  gate_start=args.gate_start, gate_gain=args.gate_gain,
                                  global_context=args.global_context)
    torch.manual_seed(args.seed)
    train(module, fit, args.steps, args.lr, args.crop, args.seed, args.batch, low_steps=args.low_steps,
          low_crop=args.low_crop, smooth_share=args.smooth_share)
    rows = evaluate(module, held)
    for name, before, after in rows:
        say(f"held out {name}: {before:.2f} -> {after:.2f} dB PSNR")
    module.save_pretrained(args.output)
    record = {
        "photos": sum(VARIANT_MARK not in ex.name for ex in fit),
        "hard_scene_variants": sum(VARIANT_MARK in ex.name for ex in fit), "cache": portable(args.cache), "model": portable(args.model) if args.model else None,
        "hold_out": portable(args.hold_out) if args.hold_out else None, "smooth_share": args.smooth_share, "gate_start": args.gate_start, "gate_gain": args.gate_gain, "global_context": args.global_context, "low_steps": args.low_steps, "low_crop": args.low_crop, "steps": args.steps, "crop": args.crop,
        "batch": args.batch, "lr": args.lr, "seed": args.seed, "seconds": round(time.time() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "held_out": [{"photo": n, "psnr_before": round(b, 4), "psnr_after": round(a, 4)} for n, b, a in rows],
    }
    (args.output / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    say(f"saved {args.output}: {summary(rows)}")
    return 0


def named_photos(listing: Path, collected: Sequence[str]) -> list[str]:
    """The photo names in ``listing`` (one a line; blank lines and ``#`` comments skipped), each of which must be
    among the ``collected`` ones: a name that is not stops the command, naming it."""
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        sys.exit(f"error: cannot read the photo list {listing}: {exc.strerror}")
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    missing = sorted(set(names) - set(collected))
    if missing:
        sys.exit(f"error: {len(missing)} photo(s) of {listing} are not collected: {', '.join(missing[:5])}")
    if not names:
        sys.exit(f"error: {listing} names no photos")
    return names


def summary(rows: Sequence[tuple[str, float, float]]) -> str:
    """The held-out photos' mean and worst PSNR gain, and their hard-scene variants' apart."""
    parts = []
    for what, group in (("held-out photos", [r for r in rows if VARIANT_MARK not in r[0]]),
                        ("their hard-scene variants", [r for r in rows if VARIANT_MARK in r[0]])):
        if group:
            gains = [a - b for _, b, a in group]
            parts.append(f"{what} {sum(gains) / len(gains):+.3f} dB PSNR on average, worst {min(gains):+.3f} dB")
    return "; ".join(parts)


def portable(path: Path) -> str:
    """A path as a record in the repository may name it: relative to the home directory where it is inside."""
    resolved, home = Path(path).resolve(), Path.home().resolve()
    return f"~/{resolved.relative_to(home)}" if resolved.is_relative_to(home) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.training.consistency", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="make the training data: original, thumbnail, reconstruction per photo")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--data", type=Path, nargs="+", required=True)
    c.add_argument("--shard", help="I/N: only every N-th photo from the I-th (run N processes side by side)")
    c.add_argument("--hard-scenes", action="store_true",
                   help="also a night, fog, high-key or soft variant of every photo (held out with its photo)")
    c.add_argument("--min-bicubic-psnr-y", type=float, metavar="DB",
                   help="only the photos that bicubic from a plain thumbnail gives back at DB or more (the smooth "
                        "ones a plain rule is chosen on, model.training.plain_rule_choice)")
    c.add_argument("-o", "--output", type=Path, required=True)
    t = sub.add_parser("train", help="train the module on collected photos")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--model", type=Path, help="the model the photos were collected with (for its scale)")
    t.add_argument("--scale", type=int, default=16)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--crop", type=int, default=512)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--low-steps", type=int, default=0, help="steps on the thumbnails alone first")
    t.add_argument("--low-crop", type=int, default=32, help="their crop, in thumbnail pixels")
    t.add_argument("--channels", type=int, default=64)
    t.add_argument("--layers", type=int, default=6)
    t.add_argument("--smooth-share", type=float, default=0.0,
                   help="share of the photo windows drawn where bicubic beats the reconstruction (0: uniform)")
    t.add_argument("--gate-start", type=float, default=TRAINED_GATE_START,
                   help="the detail gate's logit before training (sigmoid of it: the share of detail kept)")
    t.add_argument("--gate-gain", type=float, default=TRAINED_GATE_GAIN,
                   help="how fast the gate learns (its logit is this times the network's output)")
    t.add_argument("--global-context", action="store_true",
                   help="also give the network the whole thumbnail's colour statistics (see model.consistency)")
    t.add_argument("--validation", type=int, default=8, help="photos held out and reported, drawn at random")
    t.add_argument("--hold-out", type=Path, metavar="LIST",
                   help="hold out and report the photos named in LIST (one a line) instead of --validation's")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("-o", "--output", type=Path, required=True)
    k = sub.add_parser("compare", help="compare steps on collected photos (model.training.consistency_compare)")
    k.add_argument("--cache", type=Path, required=True)
    k.add_argument("--scale", type=int, choices=(16, 32), required=True)
    k.add_argument("--only", type=Path, metavar="LIST", help="only the photos named in LIST (one a line)")
    k.add_argument("steps", nargs="+", metavar="LABEL=STEP_DIR", help="a step folder (a model's consistency/)")
    args = p.parse_args(argv)
    commands = {"collect": _collect_main, "train": _train_main, "compare": _compare_main}
    return commands[args.command](args)


def _compare_main(args: argparse.Namespace) -> int:
    from model.training import consistency_compare

    steps = {}
    for spec in args.steps:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not (Path(folder) / "config.json").is_file():
            sys.exit(f"error: {spec!r} is not LABEL=STEP_DIR with a step's config.json in STEP_DIR")
        steps[label] = ThumbnailConsistency.from_pretrained(folder)
        if steps[label].config.scale != args.scale:
            sys.exit(f"error: {folder} was trained for {steps[label].config.scale}x, not {args.scale}x")
    examples = load_examples(args.cache)
    if args.only:
        wanted = set(named_photos(args.only, sorted({source_photo(ex.name) for ex in examples})))
        examples = [ex for ex in examples if source_photo(ex.name) in wanted]
    rows = consistency_compare.score(examples, steps, args.scale)
    for line in consistency_compare.report(rows):
        say(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
