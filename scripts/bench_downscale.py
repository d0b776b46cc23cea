#!/usr/bin/env python
"""What a larger G_e would cost on upload: the sender (``pipe.downscale``: VAE encoder, G_e, F) of a model as it is
and with its G_e grown (``model.training.widen.widen_encoder``, untrained new weights: the cost, not the quality),
timed in turns in one process on the CPU.

    scripts/bench_downscale.py model/weights/nano-16x --grow 96/4,128/8 --sizes 768x512,2048x2048 --rounds 3 --threads 1

Every size gets each variant warmed up once, then ``--rounds`` rounds that time each variant once, in a rotated
order per round. Reported per size: each variant's median and its median ratio to the model as it is, paired by
round (above 1: slower).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_common import DEFAULT_IMAGE, cover_crop, parse_size, parse_sizes, require_image, write_json
from bench_upscale import cpu_name


def parse_growth(text: str) -> list[tuple[int, int]]:
    """``CHANNELS/RESBLOCKS,...`` -> [(channels, Resblocks), ...]."""
    try:
        return [(int(c), int(b)) for c, b in (part.split("/") for part in text.split(",") if part.strip())]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--grow takes CHANNELS/RESBLOCKS,..., e.g. 96/4,128/8; got {text!r}") from None


def measure(args: argparse.Namespace) -> dict:
    import torch
    from PIL import Image

    from model import TADMPipeline
    from model.training.widen import widen_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = TADMPipeline.from_pretrained(args.model)
    encoders = {"as is": pipe.dfrm}
    for channels, blocks in args.grow:
        encoders[f"{channels}/{blocks}"] = widen_encoder(pipe.dfrm, channels=channels, res_blocks=blocks).eval()
    names = list(encoders)
    with Image.open(args.image) as photo:
        photo = photo.convert("RGB")
        sources = {size: cover_crop(photo, size) for size in args.sizes}
    results = []
    for size, source in sources.items():
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for name in names:  # untimed warm-up
            pipe.dfrm = encoders[name]
            pipe.downscale(source, learned=True)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                pipe.dfrm = encoders[name]
                start = time.perf_counter()
                pipe.downscale(source, learned=True)
                seconds[name].append(time.perf_counter() - start)
        for name in names:
            ratio = statistics.median(b / a for a, b in zip(seconds["as is"], seconds[name], strict=True))
            results.append({"size": list(size), "g_e": list(encoders[name].encoder_shape), "variant": name,
                            "parameters": sum(p.numel() for p in encoders[name].parameters()),
                            "seconds_runs": seconds[name], "seconds_median": statistics.median(seconds[name]),
                            "over_as_is_paired_median": ratio})
    return {"benchmark": "downscale-g_e-growth", "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": str(args.model), "model_id": pipe.model_id, "rounds": args.rounds,
            "torch_threads": torch.get_num_threads(), "device_name": cpu_name(), "image": args.image.name,
            "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model directory")
    parser.add_argument("--grow", type=parse_growth, default=[], help="G_e sizes to try, CHANNELS/RESBLOCKS,...")
    parser.add_argument("--sizes", type=parse_sizes, default=[parse_size("768x512")],
                        help="WIDTHxHEIGHT,... (default 768x512)")
    parser.add_argument("--rounds", type=int, default=3, help="timed downscales per variant and size (default 3)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="source photograph (default: kodim01)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--rounds and --threads must be at least 1")
    if not (args.model / "tadm.json").is_file():
        parser.error(f"{args.model} is not a model directory (no tadm.json)")
    require_image(parser, args.image)
    try:
        doc = measure(args)
    except ValueError as exc:  # a --grow size smaller than the model's
        parser.error(str(exc))
    doc["command"] = "scripts/bench_downscale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"downscale, {args.rounds} rounds in turns, {doc['torch_threads']} threads [{doc['device_name']}]")
    for row in doc["results"]:
        print(f"  {row['size'][0]}x{row['size'][1]}  G_e {row['variant']:>6} {tuple(row['g_e'])}: median "
              f"{row['seconds_median']:.3f} s, x{row['over_as_is_paired_median']:.2f} paired")
    if args.json:
        write_json(args.json, doc)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
