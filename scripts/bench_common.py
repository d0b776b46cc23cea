"""What the benchmark scripts share: the source photograph, the sizes they are asked for, how a photograph is cut
to a size, and how their JSON is written. Imported by the ``bench_*.py`` scripts from beside them (no torch here:
the upscale benchmark's parent process stays light)."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The Kodak photographs are not part of the repository: TADM_KODAK_DIR names their folder, else shared/data/kodak
# beside the repository.
KODAK_DIR = Path(os.environ.get("TADM_KODAK_DIR") or REPO.parent / "shared" / "data" / "kodak")
DEFAULT_IMAGE = KODAK_DIR / "kodak__kodim01.png"


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or min(int(match[1]), int(match[2])) < 32:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT with both at least 32, e.g. 2048x2048; got {text!r}")
    return int(match[1]), int(match[2])


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """A comma-separated list of WIDTHxHEIGHT."""
    return [parse_size(part) for part in text.split(",") if part.strip()]


def cover_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale ``image`` to cover ``size`` and crop its centre: real photographic content at any size."""
    w, h = size
    factor = max(w / image.width, h / image.height)
    scaled = image.resize((max(w, round(image.width * factor)), max(h, round(image.height * factor))),
                          Image.Resampling.LANCZOS)
    left, top = (scaled.width - w) // 2, (scaled.height - h) // 2
    return scaled.crop((left, top, left + w, top + h))


def require_image(parser: argparse.ArgumentParser, image: Path) -> None:
    """A usage error, naming where the photographs live, when the source photograph is missing."""
    if not image.is_file():
        parser.error(f"--image {image} does not exist (the Kodak photographs are looked for in {KODAK_DIR}: set "
                     "TADM_KODAK_DIR, or pass --image)")


def parse_photo_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, Image.Image]:
    """``--sizes``, ``--runs`` and ``--image`` added to ``parser`` and parsed, with the photograph opened as RGB: the
    arguments of the benchmarks that time one call on a photo cut to each size."""
    parser.add_argument("--sizes", default="2048x2048,3840x2160")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    args = parser.parse_args(argv)
    require_image(parser, args.image)
    with Image.open(args.image) as opened:
        return args, opened.convert("RGB")


def write_json(path: Path, document: dict) -> None:
    """``document`` as indented JSON at ``path``, its folder created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def strip_json_flag(argv: list[str]) -> list[str]:
    """The arguments a benchmark's child process needs: the parent alone writes the JSON file."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            out.append(arg)
    return out


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """The median wall-clock seconds of ``repeats`` calls of ``action``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
