#!/usr/bin/env python
"""GPU benchmark of the TADM receiver (issue 8): seconds, megapixels/s, stages, memory and UNet efficiency.

On a machine with a CUDA GPU, one command (sized to end within 7 minutes on an H100: ``--time-budget`` 420 s
skips what is left after that; the JSON is rewritten after every measurement, so a cut-off run keeps its figures):

    python scripts/bench_gpu.py --json docs/benchmarks/bench_gpu-h100.json

It needs torch with CUDA, diffusers, peft and safetensors; ``docs/benchmarks/README.md`` gives the wheels and
the exact command for a device machine that has no diffusers and no network.

CPU dry run, which runs every code path with the tiny preset (its figures say nothing about a GPU):

    python scripts/bench_gpu.py --preset tiny --device cpu --sizes 256x256 --json docs/benchmarks/cpu-dry-run.json

The model is SD 2.1-base's architecture with random weights (``from_preset("sd21-base", pretrained=False)``):
random weights cost exactly what trained ones do. LoRA-B is filled with small random values so that the LoRA
merge check compares something (peft starts LoRA-B at zero). The input is a Kodak photograph scaled to cover
each size; the sender (``pipe.downscale``) makes its 16x and 32x thumbnails, and the receiver is timed.

Configurations, measured in this order in one process (each builds on the one before):

* ``baseline``: the authors' way: fp16, one latent tile per UNet call, LoRA unmerged, NCHW, no compilation,
  diffusers' 512 px VAE decode tiles.
* ``optimized``: bf16, LoRA merged, PyTorch SDPA, channels_last, ``--tile-batch`` tiles per UNet call, the VAE
  decode tile chosen by a sweep (``--vae-tiles``).
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
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image

from model import TADMPipeline, Thumbnail, lora
from model.backbones import get_preset
from model.dfrm import DFRM
from model.performance import optimize_for_inference, static_batch_step
from model.tiling import StepFn, TiledResult, denoise_tiled, plan_tiles

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "kodak" / "kodak__kodim01.png"
CONFIG_ORDER = ("baseline", "optimized", "compiled", "graphs")
DEFAULT_CONFIGS = ("baseline", "optimized", "compiled")
STAGES = ("dfrm", "tpm", "unet", "scheduler", "tiling_overhead", "vae_decode")
LORA_B_STD = 0.01
GOAL_SECONDS_4K, GOAL_PEAK_FRACTION, GOAL_SPEEDUP = 1.0, 0.5, 3.0


# -- arguments ------------------------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        w, sep, h = part.partition("x")
        if not (sep and w.isdigit() and h.isdigit() and min(int(w), int(h)) >= 32):
            raise argparse.ArgumentTypeError(f"sizes are WIDTHxHEIGHT (each >= 32), comma-separated; got {part!r}")
        sizes.append((int(w), int(h)))
    return sizes


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
    p.add_argument("--scales", type=parse_ints, default=[16, 32])
    p.add_argument("--configs", type=parse_configs,
                   help="some of baseline,optimized,compiled,graphs (default: baseline,optimized,compiled on CUDA, "
                        "baseline,optimized on CPU)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per measurement; the median is reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before them")
    p.add_argument("--tile-batch", type=int, default=16, help="latent tiles per UNet call when optimised")
    p.add_argument("--tile-size", type=int, default=96)
    p.add_argument("--tile-stride", type=int, default=64)
    p.add_argument("--unet-batches", type=parse_ints,
                   help="UNet batch sizes for the throughput sweep (default 1,4,8,16,32; CPU 1,2)")
    p.add_argument("--vae-tiles", type=parse_ints,
                   help="VAE decode tile sizes (pixels) to sweep, the fastest then used (default 512,768,1024; CPU 256,512)")
    p.add_argument("--jobs", type=int, help="images reconstructed together in the multi-job run (default 4; CPU 2)")
    p.add_argument("--time-budget", type=float, default=420.0,
                   help="seconds after which remaining measurements are skipped (and listed as skipped)")
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--label", default="", help="free text stored in the JSON (e.g. 'CPU dry run')")
    return p


# -- timing -----------------------------------------------------------------------------------------------------
class StageClock:
    """Time per named stage. On CUDA, event pairs recorded on the stream and resolved in :meth:`totals` (no
    synchronisation inside a run); on CPU, where every op is synchronous, ``perf_counter``."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.events: dict[str, list] = defaultdict(list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.events[name].append((start, end))
        else:
            start_s = time.perf_counter()
            yield
            self.events[name].append(time.perf_counter() - start_s)

    def totals(self) -> dict[str, float]:
        """Seconds per stage, summed over its occurrences."""
        if self.cuda:
            torch.cuda.synchronize()
            return {k: sum(s.elapsed_time(e) for s, e in v) / 1e3 for k, v in self.events.items()}
        return {k: sum(v) for k, v in self.events.items()}

    def count(self, name: str) -> int:
        return len(self.events[name])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, runs: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def matmul_peak_tflops(device: torch.device) -> dict:
    """The device's achievable dense matmul rate: bf16 8192³ on CUDA; float32 1024³ on CPU (dry run only)."""
    dtype, n, reps = (torch.bfloat16, 8192, 10) if device.type == "cuda" else (torch.float32, 1024, 3)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = time_call(lambda: a @ b, device, reps, warmup=3)
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, "tflops": 2 * n**3 / statistics.median(seconds) / 1e12}


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


def cover_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    w, h = size
    factor = max(w / image.width, h / image.height)
    scaled = image.resize((max(w, round(image.width * factor)), max(h, round(image.height * factor))),
                          Image.Resampling.LANCZOS)
    left, top = (scaled.width - w) // 2, (scaled.height - h) // 2
    return scaled.crop((left, top, left + w, top + h))


# -- one reconstruction, stage by stage -------------------------------------------------------------------------
def staged_step(pipe: TADMPipeline, clock: StageClock) -> StepFn:
    """``pipe.denoise_step`` with a clock around each of its three stages (same modules, same order)."""

    def step(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with clock.stage("tpm"):
            t = pipe.tpm(tiles)  # (B,)
        context = pipe.empty_prompt.expand(tiles.shape[0], -1, -1).to(pipe.dtype)  # (B, 77, D)
        with clock.stage("unet"):
            eps = pipe.unet(tiles.to(pipe.dtype), t, encoder_hidden_states=context).sample.float()
        with clock.stage("scheduler"):
            z0 = pipe.scheduler(tiles, eps, t)
        return z0, t

    return step


@torch.inference_mode()
def reconstruct(
    pipe: TADMPipeline, thumbnails: list[Thumbnail], clock: StageClock, *, tile_batch: int, tile_size: int,
    tile_stride: int, static_batch: bool = False,
) -> tuple[list[Image.Image], list[TiledResult]]:
    """Thumbnails -> images, as ``pipe.upscale`` does it, with the tiles of all thumbnails batched together."""
    with clock.stage("dfrm"):
        latents = [pipe.thumbnail_to_latent(t) for t in thumbnails]
    step = staged_step(pipe, clock)
    if static_batch:
        step = static_batch_step(step, tile_batch)
    with clock.stage("denoise"):
        results = denoise_tiled(latents, step, tile_size, tile_stride, tile_batch)
    with clock.stage("vae_decode"):
        images = [pipe.latent_to_image(r.latent, t.original_size) for r, t in zip(results, thumbnails, strict=True)]
    return images, results


def stage_seconds(totals: dict[str, float]) -> dict[str, float]:
    stages = {name: totals.get(name, 0.0) for name in STAGES if name != "tiling_overhead"}
    inner = stages["tpm"] + stages["unet"] + stages["scheduler"]
    stages["tiling_overhead"] = max(0.0, totals.get("denoise", 0.0) - inner)
    return {name: stages[name] for name in STAGES}


@torch.inference_mode()
def unet_flops_per_tile(pipe: TADMPipeline, tile_shape: tuple[int, int]) -> int:
    """FLOPs of one UNet call on one tile (multiply-adds count 2), counted on the eager module."""
    from torch.utils.flop_counter import FlopCounterMode

    tiles = torch.zeros(1, 4, *tile_shape, device=pipe.device, dtype=pipe.dtype)
    t = torch.full((1,), 50.0, device=pipe.device)
    context = pipe.empty_prompt.to(pipe.dtype)
    counter = FlopCounterMode(display=False)
    with counter:
        pipe.unet(tiles, t, encoder_hidden_states=context)
    return int(counter.get_total_flops())


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

    def measure(self, config: str, pipe: TADMPipeline, thumbnails: list[Thumbnail], *, tile_batch: int,
                static_batch: bool, optimizations: dict | None) -> dict:
        """Warm-up and timed runs of one reconstruction (of one or several thumbnails)."""
        a = self.args
        knobs = {"tile_batch": tile_batch, "tile_size": a.tile_size, "tile_stride": a.tile_stride,
                 "static_batch": static_batch}
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
            "dtype": str(pipe.dtype).removeprefix("torch."), "tile_batch": tile_batch, "static_batch": static_batch,
            "vae_tile_size": pipe.vae_tile_size, "optimizations": optimizations,
            "seconds_median": seconds, "seconds_runs": runs, "first_run_s": first_run,
            "seconds_per_image": seconds / len(thumbnails), "megapixels_per_s": pixels / 1e6 / seconds,
            "stages_s": stages_median, "stages_s_of_median_run": stages,
            "tiles": len(tiles), "unet_calls": clocks[0].count("unet"),
            "unet_tiles_computed": clocks[0].count("unet") * tile_batch if static_batch else len(tiles),
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
        _, (result,) = reconstruct(pipe, [thumbnail], StageClock(self.device), tile_batch=a.tile_batch,
                                   tile_size=a.tile_size, tile_stride=a.tile_stride)
        for tile in a.vae_tiles:
            if self.over_budget(f"vae tile sweep {tile}"):
                break
            pipe.vae_tile_size = tile
            seconds = statistics.median(time_call(
                lambda: pipe.latent_to_image(result.latent, thumbnail.original_size), self.device, a.runs))
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
        thumbnails = {(s, size): pipes[s].downscale(src) for s in a.scales for size, src in sources.items()}
        document: dict = {"matmul_peak": peak, "configs": configs}
        for config in configs:
            self.log(f"\n[{config}]")
            if self.over_budget(f"config {config}"):
                continue
            applied = self.apply_config(config, pipes, thumbnails, document)
            compiled = config in ("compiled", "graphs")
            tile_batch, static = (1, False) if config == "baseline" else (a.tile_batch, compiled)
            for scale in a.scales:
                for size in a.sizes:
                    if self.over_budget(f"{config} {scale}x {size[0]}x{size[1]}"):
                        continue
                    row = self.measure(config, pipes[scale], [thumbnails[(scale, size)]], tile_batch=tile_batch,
                                       static_batch=static, optimizations=applied)
                    self.results.append(row)
                    self.log(format_row(row, peak["tflops"]))
                    self.checkpoint(document)
            if config != "baseline" and a.jobs > 1 and not self.over_budget(f"{config} {a.jobs} jobs"):
                scale, size = a.scales[0], a.sizes[0]
                row = self.measure(config, pipes[scale], [thumbnails[(scale, size)]] * a.jobs,
                                   tile_batch=tile_batch, static_batch=static, optimizations=applied)
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


def format_row(row: dict, peak_tflops: float) -> str:
    stages = " ".join(f"{k}={v * 1e3:.0f}" for k, v in row["stages_s"].items())
    fraction = f"{100 * row['unet_tflops'] / peak_tflops:.0f}%" if row["unet_tflops"] else "n/a"
    memory = f"{row['peak_memory_mib']:.0f} MiB" if row["peak_memory_mib"] is not None else "n/a"
    return (f"  {row['scale']}x {row['size'][0]}x{row['size'][1]} x{row['jobs']}: {row['seconds_median']:.3f} s, "
            f"{row['megapixels_per_s']:.2f} MP/s, UNet {row['unet_tflops'] or 0:.3g} TFLOP/s ({fraction}), "
            f"peak {memory}; ms: {stages}")


def summarize(results: list[dict], peak_tflops: float, goals: bool = True) -> dict:
    """Speed-ups over the baseline and the issue's three goals (None where not measured, or in a dry run)."""
    single = [r for r in results if r["jobs"] == 1]
    baseline = {(r["scale"], tuple(r["size"])): r for r in single if r["config"] == "baseline"}
    best: dict[tuple[int, tuple[int, int]], dict] = {}
    for r in single:
        key = (r["scale"], tuple(r["size"]))
        if r["config"] != "baseline" and (key not in best or r["seconds_median"] < best[key]["seconds_median"]):
            best[key] = r
    rows = []
    for key, r in sorted(best.items()):
        base = baseline.get(key)
        rows.append({"scale": key[0], "size": list(key[1]), "best_config": r["config"],
                     "seconds": r["seconds_median"], "baseline_seconds": base["seconds_median"] if base else None,
                     "speedup": base["seconds_median"] / r["seconds_median"] if base else None})
    four_k = best.get((16, (3840, 2160)))
    fractions = [r["unet_tflops"] / peak_tflops for r in best.values() if r["unet_tflops"]]
    speedups = [row["speedup"] for row in rows if row["speedup"]]
    if not goals:
        return {"per_size": rows, "goals": None}
    return {
        "per_size": rows,
        "goals": {
            "3840x2160_16x_under_1s": four_k["seconds_median"] < GOAL_SECONDS_4K if four_k else None,
            "3840x2160_16x_seconds": four_k["seconds_median"] if four_k else None,
            "unet_at_least_half_of_peak": min(fractions) >= GOAL_PEAK_FRACTION if fractions else None,
            "unet_fraction_of_peak_min": min(fractions) if fractions else None,
            "at_least_3x_baseline": min(speedups) >= GOAL_SPEEDUP if speedups else None,
            "speedup_min": min(speedups) if speedups else None,
        },
    }


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
    if args.runs < 1 or args.warmup < 1 or args.tile_batch < 1 or (args.jobs is not None and args.jobs < 1):
        parser.error("--runs, --warmup, --tile-batch and --jobs must be at least 1")
    if not args.image.is_file():
        parser.error(f"--image {args.image} does not exist (the Kodak photographs live in ../shared/data/kodak)")
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
        "tile_size": args.tile_size, "tile_stride": args.tile_stride, "tile_batch": args.tile_batch,
    }

    def write(document: dict) -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, **document}, indent=2) + "\n")

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
