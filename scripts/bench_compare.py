#!/usr/bin/env python
"""Side-by-side upscale benchmark on the CPU: two models timed in turns in one process, so that a shared machine's
drift falls on both alike.

    scripts/bench_compare.py model/weights/nano-16x /tmp/new-16x --serving --size 768x512 --rounds 7 --threads 2
    scripts/bench_compare.py preset:nano model/weights/nano-16x --size 2048x2048 --json out.json
    scripts/bench_compare.py model/weights/nano-16x model/weights/nano-16x --serving b   # what merging buys

Each model makes its own thumbnail of the same photograph (a Kodak image cut to ``--size``) and is warmed up with
one untimed upscale. Then every round times one upscale of each, A then B in even rounds and B then A in odd ones
(a machine that slows down during a round does not always penalise the same model). Reported: each model's median,
and the median over rounds of B's seconds divided by A's in the same round (the paired ratio; below 1: B is
faster). ``bench_upscale.py`` remains the one for peak memory (a process per size); here both models share one.
A model is a model directory, or ``preset:NAME`` for a preset's architecture with random weights. ``--serving``
gives both models the worker's serving switches (LoRA merged; ``--serving a`` or ``b``: that model only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_common import DEFAULT_IMAGE, cover_crop, parse_size, require_image, write_json
from bench_upscale import cpu_name
from model.thumbnail import SUPPORTED_SCALES


def round_order(rounds: int) -> list[tuple[int, int]]:
    """(round, model index) in the order they are timed: A, B in even rounds, B, A in odd ones."""
    return [(r, m) for r in range(rounds) for m in ((0, 1) if r % 2 == 0 else (1, 0))]


def paired_ratio(seconds_a: list[float], seconds_b: list[float]) -> float:
    """The median over rounds of B's time over A's in the same round."""
    return statistics.median(b / a for a, b in zip(seconds_a, seconds_b, strict=True))


def load_model(spec: str, scale: int, serving: bool):
    from model import TADMPipeline

    if spec.startswith("preset:"):
        pipe = TADMPipeline.from_preset(spec.removeprefix("preset:"), scale=scale, pretrained=False)
    else:
        pipe = TADMPipeline.from_pretrained(spec)
    if serving:  # what `tadm worker` does after loading (service/worker/loading.py)
        from model.performance import optimize_for_serving

        optimize_for_serving(pipe)
    return pipe


def compare(args: argparse.Namespace) -> dict:
    import torch
    from PIL import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    serving = [args.serving in ("both", label) for label in "ab"]
    pipes = [load_model(spec, args.scale, on) for spec, on in zip((args.model_a, args.model_b), serving, strict=True)]
    with Image.open(args.image) as photo:
        source = cover_crop(photo.convert("RGB"), args.size)
    thumbnails = [pipe.downscale(source, learned=True) for pipe in pipes]
    for pipe, thumbnail in zip(pipes, thumbnails, strict=True):
        pipe.upscale(thumbnail)  # untimed: pages in the code, starts the thread pools

    seconds: list[list[float]] = [[0.0] * args.rounds, [0.0] * args.rounds]
    for r, m in round_order(args.rounds):
        start = time.perf_counter()
        pipes[m].upscale(thumbnails[m])  # returns a PIL image: the work has finished
        seconds[m][r] = time.perf_counter() - start
    return {
        "benchmark": "upscale-compare",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": list(args.size), "rounds": args.rounds, "serving_optimisations": args.serving or "none",
        "torch_threads": torch.get_num_threads(), "device_name": cpu_name(), "image": args.image.name,
        "models": [
            {"model": spec, "model_id": pipe.model_id, "scale": pipe.scale, "thumbnail": list(t.image.size),
             "serving": on, "seconds_runs": runs, "seconds_median": statistics.median(runs)}
            for spec, pipe, t, runs, on in zip((args.model_a, args.model_b), pipes, thumbnails, seconds, serving,
                                               strict=True)
        ],
        "b_over_a_paired_median": paired_ratio(seconds[0], seconds[1]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_a", help="a model directory, or preset:NAME (random weights)")
    parser.add_argument("model_b", help="the same for the second model")
    parser.add_argument("--size", type=parse_size, default=(768, 512), help="WIDTHxHEIGHT (default 768x512)")
    parser.add_argument("--rounds", type=int, default=5, help="timed upscales per model (default 5)")
    parser.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16, help="for preset:NAME (default 16)")
    parser.add_argument("--serving", nargs="?", const="both", choices=("both", "a", "b"),
                        help="the worker's serving optimisations (LoRA merged) for both models, or for model a or "
                             "b alone")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="source photograph (default: kodim01)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--rounds and --threads must be at least 1")
    for spec in (args.model_a, args.model_b):
        if not spec.startswith("preset:") and not (Path(spec) / "tadm.json").is_file():
            parser.error(f"{spec} is not a model directory (no tadm.json) nor preset:NAME")
    require_image(parser, args.image)
    doc = compare(args)
    doc["command"] = "scripts/bench_compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"side by side, {args.size[0]}x{args.size[1]}, {args.rounds} rounds in turns, "
          f"{doc['torch_threads']} threads [{doc['device_name']}]")
    for label, model in zip("AB", doc["models"], strict=True):
        runs = " ".join(f"{s:.3f}" for s in model["seconds_runs"])
        served = ", serving" if model["serving"] else ""
        print(f"  {label} {model['model']} ({model['model_id']}{served}): median {model['seconds_median']:.3f} s  "
              f"[{runs}]")
    print(f"  B / A, paired by round: {doc['b_over_a_paired_median']:.3f}")
    if args.json:
        write_json(args.json, doc)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
