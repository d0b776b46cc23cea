"""The GPU benchmark's measuring instruments: a clock per stage that never synchronises a run mid-way, timed
calls, the device's matmul peak, UNet FLOPs per tile, and a reconstruction run stage by stage exactly as
``pipe.upscale`` runs it. Imported by ``bench_gpu.py`` from beside it."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from PIL import Image

from model import TADMPipeline, Thumbnail
from model.performance import static_batch_step
from model.tiling import StepFn, TiledResult, Tiling, denoise_tiled

STAGES = ("dfrm", "tpm", "unet", "scheduler", "tiling_overhead", "vae_decode")


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
    pipe: TADMPipeline, thumbnails: list[Thumbnail], clock: StageClock, *, tiling: Tiling, static_batch: bool = False,
) -> tuple[list[Image.Image], list[TiledResult]]:
    """Thumbnails -> images, as ``pipe.upscale`` does it, with the tiles of all thumbnails batched together."""
    with clock.stage("dfrm"):
        latents = [pipe.thumbnail_to_latent(t) for t in thumbnails]
    step = staged_step(pipe, clock)
    if static_batch:
        step = static_batch_step(step, tiling.tile_batch_size)
    with clock.stage("denoise"):
        results = denoise_tiled(latents, step, tiling)
    with clock.stage("vae_decode"):
        images = [pipe.latent_to_image(r.latent, t.original_size, t) for r, t in zip(results, thumbnails, strict=True)]
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
