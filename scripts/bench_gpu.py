#!/usr/bin/env python
"""GPU benchmark of the TADM receiver: seconds, megapixels/s, stages, memory and UNet efficiency.

On a machine with a CUDA GPU, one command (sized to end within 7 minutes on an H100: ``--time-budget`` 420 s
skips what is left after that; the JSON is rewritten after every measurement, so a cut-off run keeps its figures):

    python scripts/bench_gpu.py --json docs/benchmarks/bench_gpu-h100.json

It needs torch with CUDA, diffusers, peft and safetensors; ``docs/benchmarks/README.md`` gives the wheels and
the exact command for a GPU host that has no diffusers and no network.

CPU dry run, which runs every code path with the tiny preset (its figures say nothing about a GPU):

    python scripts/bench_gpu.py --preset tiny --device cpu --sizes 256x256 --json docs/benchmarks/cpu-dry-run.json

The model is SD 2.1-base's architecture with random weights (``from_preset("sd21-base", pretrained=False)``):
random weights cost exactly what trained ones do. LoRA-B is filled with small random values so that the LoRA
merge check compares something (peft starts LoRA-B at zero). The input is a Kodak photograph scaled to cover
each size; the sender (``pipe.downscale``) makes its 16x and 32x thumbnails, and the receiver is timed.

Configurations, measured in this order in one process (each builds on the one before):

* ``baseline``: the authors' way: fp16, one latent tile per UNet call, LoRA unmerged, NCHW, no compilation; the
  VAE as the pipeline runs it (one pass up to ``pipe.vae_max_pixels``, bands of ``vae_tile_size``² px above).
* ``optimized``: bf16, LoRA merged, PyTorch SDPA, channels_last, ``--tile-batch-size`` tiles per UNet call, the VAE
  band size chosen by a sweep (``--vae-tiles``; it changes the time only of images above the one-pass budget).
* ``compiled``: ``optimized`` plus ``torch.compile`` of the UNet and the VAE decoder, UNet batches padded to a
  static shape (``model.performance.static_batch_step``). Its first run includes compilation (reported apart).
* ``graphs`` (only when asked for): ``compiled`` with the UNet in ``reduce-overhead`` mode (CUDA graphs).

For each configuration, scale and size: the median wall time of ``--runs`` reconstructions after ``--warmup``
untimed ones, megapixels/s, the time of each stage (DFRM, TPM, UNet, scheduler, tiling overhead, VAE decode;
CUDA events recorded around each stage, resolved once per run, so the run is never synchronised mid-way), peak
GPU memory, and the UNet's achieved TFLOP/s (FLOPs counted by ``torch.utils.flop_counter`` on one tile, times
the real tiles: padding computed for a static batch counts as waste) against the device's peak, measured here
with a large bf16 matrix product. Also: a UNet batch-size sweep, the VAE tile
sweep, several jobs batched through one tile loop (``--jobs``), and the LoRA merge tolerance in bf16.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image

from bench_common import DEFAULT_IMAGE, cover_crop, parse_sizes, require_image, write_json
from bench_gpu_report import format_row, summarize
from bench_gpu_stages import (
    STAGES,
    StageClock,
    matmul_peak_tflops,
    reconstruct,
    stage_seconds,
    synchronize,
    time_call,
    unet_flops_per_tile,
)
from model import TADMPipeline, Thumbnail, lora
from model.backbones import get_preset
from model.dfrm import DFRM
from model.performance import optimize_for_inference
from model.thumbnail import SUPPORTED_SCALES
from model.tiling import DEFAULT_TILING, Tiling, plan_tiles

CONFIG_ORDER = ("baseline", "optimized", "compiled", "graphs")
DEFAULT_CONFIGS = ("baseline", "optimized", "compiled")
LORA_B_STD = 0.01


# -- arguments ------------------------------------------------------------------------------------------------
def parse_ints(text: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_configs(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(names) - set(CONFIG_ORDER))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"configs are some of {','.join(CONFIG_ORDER)}; got {text!r}")
    return [c for c in CONFIG_ORDER if c in names]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=("tiny", "nano", "sd21-base"), default="sd21-base")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--sizes", type=parse_sizes, default=[(2048, 2048), (3840, 2160)])
    p.add_argument("--scales", type=parse_ints, default=list(SUPPORTED_SCALES))
    p.add_argument("--configs", type=parse_configs,
                   help="some of baseline,optimized,compiled,graphs (default: baseline,optimized,compiled on CUDA, "
                        "baseline,optimized on CPU)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per measurement; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before them")
    # model.tiling.Tiling's knobs, by its names; a GPU fills larger UNet batches than the library's default.
    p.add_argument("--tile-batch-size", "--tile-batch", dest="tile_batch_size", type=int, default=16,
                   help="latent tiles per UNet call when optimised (default 16)")
    p.add_argument("--tile-size", type=int, default=DEFAULT_TILING.tile_size)
    p.add_argument("--tile-stride", type=int, default=DEFAULT_TILING.tile_stride)
    p.add_argument("--unet-batches", type=parse_ints,
                   help="UNet batch sizes for the throughput sweep (default 1,4,8,16,32; CPU 1,2)")
    p.add_argument("--vae-tiles", type=parse_ints,
                   help="VAE band sizes (pipe.vae_tile_size: bands of about N² px) to sweep, the fastest then used "
                        "(default 512,768,1024; CPU 256,512)")
    p.add_argument("--jobs", type=int, help="images reconstructed together in the multi-job run (default 4; CPU 2)")
    p.add_argument("--time-budget", type=float, default=420.0,
                   help="seconds after which remaining measurements are skipped (and listed as skipped)")
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--label", default="", help="free text stored in the JSON (e.g. 'CPU dry run')")
    return p


# -- the model and its inputs ---------------------------------------------------------------------------------
def randomize_lora_b(module: torch.nn.Module, generator: torch.Generator, std: float = LORA_B_STD) -> None:
    """Give the adapters an effect (peft initialises LoRA-B to zero)."""
    with torch.no_grad():
        for _, layer in lora.lora_layers(module):
            for linear in layer.lora_B.values():
                linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * std)


def build_pipelines(preset: str, scales: list[int]) -> dict[int, TADMPipeline]:
    """One pipeline per scale, sharing one UNet and VAE (only the DFRM depends on the scale)."""
    first = TADMPipeline.from_preset(preset, scale=scales[0], pretrained=False)
    generator = torch.Generator("cpu").manual_seed(0)
    randomize_lora_b(first.unet, generator)
    randomize_lora_b(first.vae, generator)
    pipes = {scales[0]: first}
    for scale in scales[1:]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(scale)
            dfrm = DFRM(scale=scale, **get_preset(preset).dfrm)
        pipes[scale] = TADMPipeline(
            vae=first.vae, unet=first.unet, dfrm=dfrm, tpm=first.tpm, refiner=first.refiner,
            empty_prompt=first.empty_prompt, config={**first.config, "scale": scale},
        )
    return pipes


# -- the benchmark ----------------------------------------------------------------------------------------------
class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.started = time.perf_counter()
        self.skipped: list[str] = []
        self.results: list[dict] = []
        self.flops: dict[tuple[str, tuple[int, int]], int] = {}
        self.log = print
        self.write: Callable[[dict], None] | None = None  # set by main() to write the JSON document

    def over_budget(self, what: str) -> bool:
        if time.perf_counter() - self.started > self.args.time_budget:
            self.skipped.append(what)
            self.log(f"  skipped (time budget {self.args.time_budget:.0f} s spent): {what}")
            return True
        return False

    def set_dtype(self, pipes: dict[int, TADMPipeline], dtype: torch.dtype) -> None:
        if not self.cuda:
            dtype = torch.float32  # the CPU path is float32 only; the dry run keeps every other step
        for pipe in pipes.values():
            pipe.to(self.device, dtype)

    def tiling(self, tile_batch_size: int) -> Tiling:
        return Tiling(self.args.tile_size, self.args.tile_stride, tile_batch_size)

    def measure(self, config: str, pipe: TADMPipeline, thumbnails: list[Thumbnail], *, tile_batch_size: int,
                static_batch: bool, optimizations: dict | None) -> dict:
        """Warm-up and timed runs of one reconstruction (of one or several thumbnails)."""
        a = self.args
        knobs = {"tiling": self.tiling(tile_batch_size), "static_batch": static_batch}
        first_run = None
        for i in range(a.warmup):
            start = time.perf_counter()
            reconstruct(pipe, thumbnails, StageClock(self.device), **knobs)
            synchronize(self.device)
            if i == 0:
                first_run = time.perf_counter() - start
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        runs, clocks, results = [], [], None
        for _ in range(a.runs):
            clock = StageClock(self.device)
            start = time.perf_counter()
            _, results = reconstruct(pipe, thumbnails, clock, **knobs)
            synchronize(self.device)
            runs.append(time.perf_counter() - start)
            clocks.append(clock)
        median_index = sorted(range(len(runs)), key=runs.__getitem__)[len(runs) // 2]
        stages = stage_seconds(clocks[median_index].totals())
        per_run = [stage_seconds(c.totals()) for c in clocks]
        stages_median = {s: statistics.median(r[s] for r in per_run) for s in STAGES}
        tiles = [(t.h, t.w) for r in results for t in r.tiles]
        flops = sum(self.flops[self.flops_key(config, shape)] for shape in tiles)
        unet_s = stages_median["unet"]
        seconds = statistics.median(runs)
        pixels = sum(t.original_size[0] * t.original_size[1] for t in thumbnails)
        w, h = thumbnails[0].original_size
        return {
            "config": config, "scale": pipe.scale, "size": [w, h], "jobs": len(thumbnails),
            "dtype": str(pipe.dtype).removeprefix("torch."), "tile_batch_size": tile_batch_size, "static_batch": static_batch,
            "vae_tile_size": pipe.vae_tile_size, "optimizations": optimizations,
            "seconds_median": seconds, "seconds_runs": runs, "first_run_s": first_run,
            "seconds_per_image": seconds / len(thumbnails), "megapixels_per_s": pixels / 1e6 / seconds,
            "stages_s": stages_median, "stages_s_of_median_run": stages,
            "tiles": len(tiles), "unet_calls": clocks[0].count("unet"),
            "unet_tiles_computed": clocks[0].count("unet") * tile_batch_size if static_batch else len(tiles),
            "unet_tflop_per_run": flops / 1e12, "unet_tflops": flops / unet_s / 1e12 if unet_s else None,
            "peak_memory_mib": torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else None,
        }

    @staticmethod
    def flops_key(config: str, shape: tuple[int, int]) -> tuple[str, tuple[int, int]]:
        return ("unmerged" if config == "baseline" else "merged", shape)

    def count_flops(self, config: str, pipe: TADMPipeline) -> None:
        """UNet FLOPs per tile for every tile shape the sizes produce, counted on the eager module (a compiled
        one runs kernels the counter does not see). The unmerged model also counts its LoRA matmuls."""
        a = self.args
        for w, h in a.sizes:
            for tile in plan_tiles(-(-h // pipe.latent_factor), -(-w // pipe.latent_factor), a.tile_size, a.tile_stride):
                key = self.flops_key(config, (tile.h, tile.w))
                if key not in self.flops:
                    self.flops[key] = unet_flops_per_tile(pipe, (tile.h, tile.w))

    def unet_batch_sweep(self, pipe: TADMPipeline) -> list[dict]:
        """UNet alone on random (B, 4, tile, tile) batches: where its throughput saturates."""
        a, rows = self.args, []
        w, h = a.sizes[0]
        shape = (min(a.tile_size, -(-h // pipe.latent_factor)), min(a.tile_size, -(-w // pipe.latent_factor)))  # the tiles of the first size
        flops = unet_flops_per_tile(pipe, shape)
        for batch in a.unet_batches:
            if self.over_budget(f"unet batch sweep B={batch}"):
                break
            tiles = torch.randn(batch, 4, *shape, device=self.device, dtype=pipe.dtype)
            t = torch.full((batch,), 50.0, device=self.device)
            context = pipe.empty_prompt.expand(batch, -1, -1).to(pipe.dtype)
            with torch.inference_mode():
                seconds = statistics.median(time_call(
                    lambda tiles=tiles, t=t, context=context: pipe.unet(tiles, t, encoder_hidden_states=context),
                    self.device, max(a.runs, 3), warmup=2))
            rows.append({"batch": batch, "tile": list(shape), "seconds": seconds, "tiles_per_s": batch / seconds,
                         "tflops": batch * flops / seconds / 1e12})
            self.log(f"  UNet B={batch:>3}: {seconds * 1e3:8.2f} ms, {rows[-1]['tflops']:7.3g} TFLOP/s")
        return rows

    def vae_tile_sweep(self, pipe: TADMPipeline, thumbnail: Thumbnail) -> list[dict]:
        """VAE decode alone at each candidate tile size, on the clean latent of ``thumbnail``."""
        a, rows = self.args, []
        _, (result,) = reconstruct(pipe, [thumbnail], StageClock(self.device), tiling=self.tiling(a.tile_batch_size))
        for tile in a.vae_tiles:
            if self.over_budget(f"vae tile sweep {tile}"):
                break
            pipe.vae_tile_size = tile
            seconds = statistics.median(time_call(
                lambda: pipe.latent_to_image(result.latent, thumbnail.original_size, thumbnail), self.device, a.runs))
            rows.append({"vae_tile_size": tile, "seconds": seconds})
            self.log(f"  VAE decode tile {tile:>5} px: {seconds:.3f} s")
        return rows

    @torch.inference_mode()
    def lora_merge_check(self, pipe: TADMPipeline, thumbnail: Thumbnail, merge: Callable[[], object]) -> dict:
        """z0 of a batch of tiles and decoded pixels, before and after ``merge()``, in the serving dtype."""
        a = self.args
        z_hat = pipe.thumbnail_to_latent(thumbnail)
        tiles = z_hat[..., : a.tile_size, : a.tile_size]  # (1, 4, h, w)
        crop = z_hat[..., :32, :32]  # (1, 4, 32, 32): a 256 px decode
        z0_before = pipe.denoise_step(tiles)[0]
        pixels_before = pipe.vae.decode(crop.to(pipe.dtype) / pipe.scaling_factor).sample.float()
        pipe.unet.disable_adapters()
        pipe.vae.disable_adapters()
        z0_without = pipe.denoise_step(tiles)[0]
        pixels_without = pipe.vae.decode(crop.to(pipe.dtype) / pipe.scaling_factor).sample.float()
        pipe.unet.enable_adapters()
        pipe.vae.enable_adapters()
        merge()
        z0_after = pipe.denoise_step(tiles)[0]
        pixels_after = pipe.vae.decode(crop.to(pipe.dtype) / pipe.scaling_factor).sample.float()

        def diff(x: torch.Tensor, y: torch.Tensor) -> float:
            return float((x - y).abs().max())

        return {
            "dtype": str(pipe.dtype).removeprefix("torch."), "lora_b_std": LORA_B_STD,
            "z0_merged_vs_unmerged": diff(z0_after, z0_before), "z0_lora_effect": diff(z0_before, z0_without),
            "pixels_merged_vs_unmerged": diff(pixels_after, pixels_before),
            "pixels_lora_effect": diff(pixels_before, pixels_without),
        }

    def run(self) -> dict:
        a = self.args
        configs = a.configs or (list(DEFAULT_CONFIGS) if self.cuda else ["baseline", "optimized"])
        self.log(f"bench_gpu: {a.preset} (random weights) on {device_name(self.device)}")
        peak = matmul_peak_tflops(self.device)
        self.log(f"matmul peak ({peak['dtype']} {peak['n']}^3): {peak['tflops']:.3g} TFLOP/s")
        pipes = build_pipelines(a.preset, a.scales)
        self.set_dtype(pipes, torch.float16 if "baseline" in configs else torch.bfloat16)
        with Image.open(a.image) as photo:
            photo = photo.convert("RGB")
            sources = {size: cover_crop(photo, size) for size in a.sizes}
        thumbnails = {(s, size): pipes[s].downscale(src, learned=True) for s in a.scales for size, src in sources.items()}
        document: dict = {"matmul_peak": peak, "configs": configs}
        for config in configs:
            self.log(f"\n[{config}]")
            if self.over_budget(f"config {config}"):
                continue
            applied = self.apply_config(config, pipes, thumbnails, document)
            compiled = config in ("compiled", "graphs")
            tile_batch_size, static = (1, False) if config == "baseline" else (a.tile_batch_size, compiled)
            for scale in a.scales:
                for size in a.sizes:
                    if self.over_budget(f"{config} {scale}x {size[0]}x{size[1]}"):
                        continue
                    row = self.measure(config, pipes[scale], [thumbnails[(scale, size)]],
                                       tile_batch_size=tile_batch_size, static_batch=static, optimizations=applied)
                    self.results.append(row)
                    self.log(format_row(row, peak["tflops"]))
                    self.checkpoint(document)
            if config != "baseline" and a.jobs > 1 and not self.over_budget(f"{config} {a.jobs} jobs"):
                scale, size = a.scales[0], a.sizes[0]
                row = self.measure(config, pipes[scale], [thumbnails[(scale, size)]] * a.jobs,
                                   tile_batch_size=tile_batch_size, static_batch=static, optimizations=applied)
                self.results.append(row)
                self.log(format_row(row, peak["tflops"]))
                self.checkpoint(document)
        return self.finish(document, partial=False)

    def apply_config(self, config: str, pipes: dict[int, TADMPipeline], thumbnails: dict, document: dict) -> dict | None:
        """Put the (shared) model in ``config``'s state; the first optimised config also runs the LoRA merge
        check, the UNet batch sweep and the VAE tile sweep. Returns the optimisations applied."""
        a, first = self.args, pipes[self.args.scales[0]]
        if config == "baseline":
            self.count_flops(config, first)
            return None
        self.set_dtype(pipes, torch.bfloat16)
        if "lora_merge_check" not in document:
            document["lora_merge_check"] = self.lora_merge_check(
                first, thumbnails[(a.scales[0], a.sizes[0])], lambda: optimize_for_inference(first, compile=False))
            self.log(f"  LoRA merge check: {document['lora_merge_check']}")
        self.count_flops(config, first)  # on the eager module, before any compilation
        applied = optimize_for_inference(first, compile=config != "optimized", cuda_graphs=config == "graphs").as_dict()
        if config == "optimized":
            document["unet_batch_sweep"] = self.unet_batch_sweep(first)
            sweep = self.vae_tile_sweep(first, thumbnails[(a.scales[0], a.sizes[-1])])
            document["vae_tile_sweep"] = sweep
            if sweep:
                best = min(sweep, key=lambda r: r["seconds"])["vae_tile_size"]
                for pipe in pipes.values():
                    pipe.vae_tile_size = best
        return applied

    def finish(self, document: dict, partial: bool) -> dict:
        peak = document["matmul_peak"]["tflops"]
        for row in self.results:
            row["unet_fraction_of_peak"] = row["unet_tflops"] / peak if row["unet_tflops"] else None
        document.update(results=self.results, skipped=self.skipped, partial=partial,
                        summary=summarize(self.results, peak, goals=self.cuda),
                        total_seconds=time.perf_counter() - self.started)
        return document

    def checkpoint(self, document: dict) -> None:
        """Write what is measured so far, so that a run cut off by a time limit still leaves its figures."""
        if self.args.json and self.write is not None:
            self.write(self.finish(dict(document), partial=True))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU ({torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict:
    import diffusers
    import peft

    info = {"device": device_name(device), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30,
                    cuda=torch.version.cuda)
    return info


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 1 or args.tile_batch_size < 1 or (args.jobs is not None and args.jobs < 1):
        parser.error("--runs, --warmup, --tile-batch-size and --jobs must be at least 1")
    require_image(parser, args.image)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.unet_batches = args.unet_batches or ([1, 4, 8, 16, 32] if cuda else [1, 2])
    args.vae_tiles = args.vae_tiles or ([512, 768, 1024] if cuda else [256, 512])
    args.jobs = args.jobs or (4 if cuda else 2)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device; use --device cpu --preset tiny for a dry run")
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda or cpu, got {args.device!r}")
    header = {
        "benchmark": "bench_gpu", "label": args.label or ("CPU dry run" if device.type == "cpu" else ""),
        "dry_run": device.type != "cuda", "command": "python scripts/bench_gpu.py " + " ".join(argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "environment": environment(device),
        "preset": args.preset, "weights": f"random (LoRA-B ~ N(0, {LORA_B_STD}^2))", "scales": args.scales,
        "sizes": [list(s) for s in args.sizes], "runs": args.runs, "warmup": args.warmup,
        "tile_size": args.tile_size, "tile_stride": args.tile_stride, "tile_batch_size": args.tile_batch_size,
    }

    def write(document: dict) -> None:
        write_json(args.json, {**header, **document})

    benchmark = Benchmark(args)
    benchmark.write = write if args.json else None
    document = benchmark.run()
    print("\nsummary:", json.dumps(document["summary"]))
    if args.json:
        write(document)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
