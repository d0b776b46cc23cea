#!/usr/bin/env python
"""Upscale benchmark: seconds and peak memory to reconstruct large images from their thumbnails.

    scripts/bench_upscale.py --preset tiny                       # what `make bench` runs
    scripts/bench_upscale.py --preset nano --runs 5 --json out.json
    scripts/bench_upscale.py --preset sd21-base --device cuda --tile-batch-size 16
    scripts/bench_upscale.py --model model/weights/nano-16x --serving --sizes 768x512 --top-ops 8   # where the time goes

The model is built from its preset with random weights (``pretrained=False``): a random network costs what a
trained one of the same architecture costs. The input is a real photograph (a Kodak image scaled to cover the
size and centre-cropped), turned into a thumbnail by the sender (``pipe.downscale``); what is timed is the
receiver, ``pipe.upscale``, the median of ``--runs`` runs after one untimed run.

Each size runs in a fresh Python process, so that its peak memory is its own: on CPU the peak resident set size
during the first upscale above the resident set before it (after a 64x64 upscale that loads the libraries' code) (``VmHWM`` in ``/proc/self/status``, whose high-water
mark is reset through ``/proc/self/clear_refs``; torch allocates outside Python's heap, so tracemalloc would miss
it); on CUDA ``torch.cuda.max_memory_allocated`` over the same call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_common import (
    DEFAULT_IMAGE,
    REPO,
    cover_crop,
    parse_size,
    parse_sizes,
    require_image,
    strip_json_flag,
    write_json,
)
from model.cli import add_attention_pool_arg, add_tiling_args, apply_attention_pool, tiling_from_args
from model.thumbnail import SUPPORTED_SCALES
from model.tiling import check_overrides

DTYPES = ("float32", "bfloat16", "float16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("tiny", "nano", "sd21-base"), default="tiny")
    parser.add_argument("--model", type=Path, help="time this model directory instead of a preset's random weights")
    parser.add_argument("--serving", action="store_true",
                        help="apply the worker's serving optimisations first (LoRA merged into the weights, SDPA)")
    parser.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16,
                        help="with --preset (default 16); a --model has its own scale")
    parser.add_argument("--sizes", type=parse_sizes, default=[(1024, 1024), (2048, 2048)],
                        help="comma-separated WIDTHxHEIGHT list (default: 1024x1024,2048x2048)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size; the median is reported (default 3)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, help="UNet/VAE dtype (default: float32 on CPU, bfloat16 on CUDA)")
    add_tiling_args(parser)  # --tile-size, --tile-stride, --tile-batch-size: model.tiling.Tiling's knobs
    add_attention_pool_arg(parser)  # --attention-pool
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="source photograph (default: kodim01)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--top-ops", type=int, default=0, metavar="N",
                        help="profile one more upscale per size and report the N operators with the most own time")
    parser.add_argument("--child", type=parse_size, help=argparse.SUPPRESS)  # internal: measure one size here
    return parser


# -- one size, in this process ------------------------------------------------------------------------------
def read_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None where procfs is missing."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) if match else None


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(args: argparse.Namespace, size: tuple[int, int]) -> dict:
    """Build the model, make the thumbnail, and time ``pipe.upscale`` at ``size`` in this process."""
    import torch
    from PIL import Image

    from model import TADMPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    if args.model is not None:
        pipe = TADMPipeline.from_pretrained(args.model, device=device, dtype=dtype)
    else:
        pipe = TADMPipeline.from_preset(args.preset, scale=args.scale, pretrained=False, device=device, dtype=dtype)
    apply_attention_pool(args, pipe)
    if args.serving:  # what `tadm worker` does after loading (service/worker/loading.py)
        from model.performance import optimize_for_serving

        optimize_for_serving(pipe)
    with Image.open(args.image) as photo:
        source = cover_crop(photo.convert("RGB"), size)
    thumbnail = pipe.downscale(source, learned=True)
    tiling = tiling_from_args(args, pipe.default_tiling)  # the model's tiles, unless --tile-* say otherwise

    def upscale() -> float:
        start = time.perf_counter()
        pipe.upscale(thumbnail, tiling=tiling)  # returns a PIL image: the device has finished
        return time.perf_counter() - start

    # A 64x64 upscale first pages in the libraries' code and starts their thread pools, so that the memory
    # measured next is the upscale's data; then the first full-size upscale is untimed and gives the peak.
    pipe.upscale(pipe.downscale(cover_crop(source, (64, 64)), learned=True), tiling=tiling)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        upscale()
        memory = {"kind": "cuda_max_memory_allocated", "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20}
    else:
        rss_before = read_status_kib("VmRSS")
        reset = reset_peak_rss()
        upscale()
        peak = read_status_kib("VmHWM")
        memory = {"kind": "rss_high_water_mark_delta" if reset else "rss_high_water_mark_since_start",
                  "peak_rss_mib": peak / 1024 if peak is not None else None,
                  "peak_mib": (peak - rss_before) / 1024 if reset and peak is not None and rss_before else None}
    seconds = [upscale() for _ in range(args.runs)]
    median = statistics.median(seconds)
    top_ops = profile_top_ops(upscale, args.top_ops) if args.top_ops else None
    latent_h, latent_w = pipe.thumbnail_to_latent(thumbnail).shape[-2:]  # the padding is the model's layout's
    return {
        "size": list(size),
        "thumbnail": list(thumbnail.image.size),
        "scale": pipe.scale,  # a --model's own scale, not --scale
        "attention_pool": pipe.attention_pool,
        "tiles": len(pipe.layout.tiles.plan(latent_h, latent_w, tiling.tile_size, tiling.tile_stride)),
        "tiling": {"tile_size": tiling.tile_size, "tile_stride": tiling.tile_stride,
                   "tile_batch_size": tiling.tile_batch_size},
        "seconds_median": median,
        "seconds_runs": seconds,
        "megapixels_per_s": size[0] * size[1] / 1e6 / median,
        "memory": memory,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        **({"top_ops": top_ops} if top_ops is not None else {}),
    }


def profile_top_ops(upscale, count: int) -> dict:
    """One upscale under torch.profiler (CPU activity): the ``count`` operators with the most own time, each with
    its calls and share of the profiled upscale's own time. The profiler's overhead makes the upscale slower;
    the shares are what to read. On CUDA these are host-side times (launches), not kernel times."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        upscale()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return {
        "profiled_seconds": total / 1e6,
        "ops": [{"name": e.key, "calls": e.count, "self_seconds": e.self_cpu_time_total / 1e6,
                 "share": e.self_cpu_time_total / total} for e in ranked],
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- orchestration: one subprocess per size -----------------------------------------------------------------
def run_child(argv: list[str], size: tuple[int, int]) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", f"{size[0]}x{size[1]}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_upscale: the run for {size[0]}x{size[1]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(args: argparse.Namespace, results: list[dict]) -> None:
    first = results[0]
    model = f"model {args.model}" if args.model else f"preset {args.preset} (random weights)"
    serving = ", serving optimisations" if args.serving else ""
    print(f"upscale benchmark: {model}{serving}, {first['scale']}x, {args.device} "
          f"[{first['device_name']}, torch {first['torch']}, {first['torch_threads']} threads], "
          f"tiles {first['tiling']['tile_size']}/{first['tiling']['tile_stride']}, "
          f"tile batch {first['tiling']['tile_batch_size']}, attention pooled by {first['attention_pool']}, "
          f"median of {args.runs}")
    print(f"{'size':>11} {'thumbnail':>10} {'tiles':>5} {'seconds':>8} {'MP/s':>7} {'peak MiB':>9}")
    for r in results:
        peak = r["memory"]["peak_mib"]
        print(f"{r['size'][0]:>5}x{r['size'][1]:<5} {r['thumbnail'][0]:>4}x{r['thumbnail'][1]:<5} {r['tiles']:>5} "
              f"{r['seconds_median']:>8.3f} {r['megapixels_per_s']:>7.3f} "
              f"{f'{peak:.1f}' if peak is not None else 'n/a':>9}")
    print(f"(peak memory: {first['memory']['kind']})")
    for r in results:
        if "top_ops" in r:
            profiled = r["top_ops"]
            print(f"top operators, {r['size'][0]}x{r['size'][1]} (one profiled upscale, "
                  f"{profiled['profiled_seconds']:.3f} s of own time):")
            for op in profiled["ops"]:
                print(f"  {op['share']:6.1%} {op['self_seconds']:8.3f} s {op['calls']:>6}x  {op['name']}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--runs and --threads must be at least 1")
    try:
        check_overrides(args.tile_size, args.tile_stride, args.tile_batch_size)
    except ValueError as exc:
        parser.error(str(exc))
    require_image(parser, args.image)
    if args.child is not None:
        print(json.dumps(measure(args, args.child)))
        return 0
    results = [run_child(strip_json_flag(argv), size) for size in args.sizes]
    report(args, results)
    if args.json:
        document = {
            "benchmark": "upscale",
            "command": "scripts/bench_upscale.py " + " ".join(argv),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": str(args.model) if args.model else None, "preset": None if args.model else args.preset,
            "weights": "trained" if args.model else "random", "serving_optimisations": args.serving,
            "scale": results[0]["scale"], "device": args.device,
            "dtype": args.dtype or "default", "image": args.image.name, "runs": args.runs,
            **results[0]["tiling"],  # the model's default tiles unless --tile-* were given
            "attention_pool": results[0]["attention_pool"],
            "results": results,
        }
        write_json(args.json, document)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
