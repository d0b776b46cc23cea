#!/usr/bin/env python
"""What a model's plain rule (model.plain_rule) adds to a downscale: the seconds of deciding whether a photo gets the
plain thumbnail (a bicubic round trip and its PSNR-Y), at each size.

    scripts/bench_plain_rule.py --sizes 2048x2048,3840x2160 --runs 7 [--image PHOTO]

The photo (default: a Kodak photograph) is scaled to cover each size and centre-cropped. Prints the median of
``--runs`` decisions per size and scale, beside nothing else: the model's own downscale, which the rule saves on the
photos it makes plain, is ``scripts/bench_downscale.py``'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench_common import REPO, cover_crop, parse_photo_args, parse_sizes
from bench_upscale import cpu_name

sys.path.insert(0, str(REPO))
from model.plain_rule import PlainRule  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", default="16,32")
    args, source = parse_photo_args(p, argv)
    rule = PlainRule(40.0)  # the threshold does not change the work
    print(f"PlainRule.applies on {cpu_name()}")
    for size in parse_sizes(args.sizes):
        photo = cover_crop(source, size)
        for scale in (int(s) for s in args.scales.split(",")):
            seconds = []
            for _ in range(args.runs):
                start = time.perf_counter()
                rule.applies(photo, scale)
                seconds.append(time.perf_counter() - start)
            print(f"{size[0]}x{size[1]}, {scale}x: median {statistics.median(seconds):.3f} s over {args.runs} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
