#!/usr/bin/env python
"""What holding a thumbnail within the deviation bound (model.thumbnail_bound.bounded_thumbnail) adds to an upload:
the seconds of one call, at each size, on a thumbnail with a colour blotch beyond the bound (the path that pulls
pixels in; a thumbnail within the bound costs the same check and returns at once).

    scripts/bench_thumbnail_bound.py --sizes 2048x2048,3840x2160 --runs 7 [--image PHOTO]

The photo (default: a Kodak photograph) is scaled to cover each size and centre-cropped; the thumbnail is its
bicubic one at 16x with a 20x20-pixel green blotch. Prints the median of ``--runs`` calls per size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from PIL import Image

from bench_common import REPO, cover_crop, parse_photo_args, parse_sizes
from bench_upscale import cpu_name

sys.path.insert(0, str(REPO))
from model.thumbnail import Thumbnail, plain_thumbnail_image  # noqa: E402
from model.thumbnail_bound import DEFAULT_MAX_DEVIATION, bounded_thumbnail  # noqa: E402


def blotched_thumbnail(photo: Image.Image, scale: int) -> Thumbnail:
    pixels = np.asarray(plain_thumbnail_image(photo, scale)).copy()
    pixels[10:30, 10:30] = (0, 255, 0)
    return Thumbnail(Image.fromarray(pixels), scale, photo.size, "bench")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args, source = parse_photo_args(p, argv)
    print(f"bounded_thumbnail, 16x, {DEFAULT_MAX_DEVIATION:g} levels, on {cpu_name()}")
    for size in parse_sizes(args.sizes):
        photo = cover_crop(source, size)
        thumbnail = blotched_thumbnail(photo, 16)
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            bounded = bounded_thumbnail(thumbnail, photo, DEFAULT_MAX_DEVIATION)
            seconds.append(time.perf_counter() - start)
        assert bounded is not thumbnail  # the blotch was beyond the bound: the pull-in path was timed
        print(f"{size[0]}x{size[1]}: median {statistics.median(seconds):.3f} s over {args.runs} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
