"""Serving-time optimisations of a :class:`~model.pipeline.TADMPipeline`: switches that change speed, not results.

:func:`optimize_for_inference` applies, in place and in this order:

1. ``merge_lora``: fold the UNet and VAE-decoder LoRA adapters into their base weights (peft's merge), so that
   every adapted conv and linear runs one kernel instead of three. The merge is done in float32 and rounded once
   to the serving dtype: merging in bf16 would round the delta and then the sum. Tolerance (float32, tiny
   preset, LoRA-B non-zero, ``tests/model/test_performance.py``): merged and unmerged outputs agree within 5e-4
   (measured: 7e-7 on the latent, 4e-5 on pixels in [-1, 1]); for bf16 on a GPU, ``scripts/bench_gpu.py``
   reports the difference it measures next to the adapters' own effect.
   A merged pipeline must not be saved (the adapters would be applied twice on load): merge a copy for serving.
2. ``sdpa``: diffusers' ``AttnProcessor2_0`` (``torch.nn.functional.scaled_dot_product_attention``: flash or
   memory-efficient kernels) on every attention of the UNet and the VAE. ``sdpa=False`` installs the classic
   ``AttnProcessor`` (explicit softmax(QKᵀ)V), the slow reference that materialises the attention matrix. A model
   whose finest self-attention pools its keys and values (:mod:`model.attention`) keeps pooling there: that is
   the model's function, not a speed switch.
3. ``channels_last``: NHWC weights for the UNet and the VAE; cuDNN's tensor-core convolutions work in NHWC, so
   NCHW weights cost a layout transform around every conv. For CUDA only: PyTorch's CPU group norm on NHWC
   tensors computes the variance in one pass and loses precision (1e-3 on the tiny preset's latent against
   4e-6 in NCHW), so a CPU worker passes ``channels_last=False``.
4. ``compile``: ``torch.compile`` of the UNet and of the VAE decoder, in place (``nn.Module.compile``: the
   modules keep their attributes, ``.config`` included). The first call at each new input shape compiles.

CUDA graphs (``cuda_graphs=True``, which implies ``compile``; the UNet is compiled in ``reduce-overhead``
mode) replay a recorded launch sequence, so they need static shapes. The tiled receiver nearly has them: every
tile of an image of at least 768 px per side is (4, 96, 96), and only the last UNet batch of a job is short.
:func:`static_batch_step` pads that batch to the full tile batch, so that one graph per (batch, tile) shape
serves every call. The VAE decoder is compiled without CUDA graphs: diffusers' tiled decode cuts border tiles
of varying sizes. A graph's outputs are overwritten at the next replay; the tile loop consumes each step's
outputs before the next call, which is what makes the replay safe there.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch import nn

from . import lora
from .attention import set_unet_attention
from .tiling import StepFn

if TYPE_CHECKING:
    from .pipeline import TADMPipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOptimizations:
    """What :func:`optimize_for_inference` applied (benchmarks write it into their JSON)."""

    merged_lora_layers: int
    attention: str
    attention_pool: int  # the model's pooled self-attention (model.attention), kept: 1 is exact everywhere
    channels_last: bool
    compiled: tuple[str, ...]
    unet_compile_mode: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def optimize_for_inference(
    pipe: TADMPipeline,
    *,
    merge_lora: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    sdpa: bool = True,
    cuda_graphs: bool = False,
) -> InferenceOptimizations:
    """Apply the serving optimisations to ``pipe`` in place (see the module docstring); call it once.

    Args:
        pipe: the pipeline, already on its serving device and dtype.
        merge_lora: fold the LoRA adapters into the base weights (in float32, rounded once).
        channels_last: NHWC memory format for the UNet and VAE weights.
        compile: ``torch.compile`` the UNet and the VAE decoder (compiles lazily, at the first call per shape).
        sdpa: PyTorch SDPA attention (``True``) or the classic explicit attention (``False``).
        cuda_graphs: compile the UNet with CUDA graphs (``reduce-overhead``); pair it with
            :func:`static_batch_step` so that every UNet call has the same shape.
    """
    compile = compile or cuda_graphs
    merged = 0
    if merge_lora:
        merged = merge_lora_in_float32(pipe.unet) + merge_lora_in_float32(pipe.vae)
    processor = AttnProcessor2_0() if sdpa else AttnProcessor()
    set_unet_attention(pipe.unet, processor, pipe.attention_pool)  # keeps the model's pooled self-attention
    pipe.vae.set_attn_processor(processor)
    if channels_last:
        for module in (pipe.unet, pipe.vae):
            module.to(memory_format=torch.channels_last)
    compiled: tuple[str, ...] = ()
    unet_mode = None
    if compile:
        unet_mode = "reduce-overhead" if cuda_graphs else "default"
        pipe.unet.compile(mode=unet_mode)
        pipe.vae.decoder.compile(mode="default")
        compiled = ("unet", "vae.decoder")
    applied = InferenceOptimizations(
        merged_lora_layers=merged,
        attention=type(processor).__name__,
        attention_pool=pipe.attention_pool,
        channels_last=channels_last,
        compiled=compiled,
        unet_compile_mode=unet_mode,
    )
    logger.info("inference optimisations: %s", applied)
    return applied


def optimize_for_serving(pipe: TADMPipeline) -> InferenceOptimizations:
    """The switches every serving path applies (the worker, `tadm upscale`, `tadm eval`): LoRA merged, SDPA attention, NHWC on
    CUDA only (see ``channels_last`` above: the CPU group norm loses precision in NHWC), nothing compiled (a
    one-off command would pay the compile time for nothing)."""
    return optimize_for_inference(pipe, channels_last=pipe.device.type == "cuda")


def merge_lora_in_float32(module: nn.Module) -> int:
    """Merge ``module``'s LoRA adapters into its base weights, computing the sum in float32.

    A low-precision module is upcast for the merge (exactly: bf16 and fp16 embed in float32) and cast back,
    so that each merged weight is rounded once. Returns the number of adapted layers.
    """
    dtype = next(module.parameters()).dtype
    if dtype != torch.float32:
        module.to(torch.float32)
    count = lora.merge_lora(module)
    if dtype != torch.float32:
        module.to(dtype)
    return count


def static_batch_step(step: StepFn, batch_size: int) -> StepFn:
    """Wrap a tile step so that it always runs on exactly ``batch_size`` tiles.

    A short batch is padded by repeating its last tile and the padding is dropped from the outputs. Every tile
    is computed independently (group norm and attention act within a sample), so padding does not change the
    real tiles' results; it gives compiled kernels and CUDA graphs one static shape.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1 but is {batch_size}")

    def padded_step(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = tiles.shape[0]
        if count > batch_size:
            raise ValueError(f"a batch of {count} tiles is larger than the static batch size {batch_size}")
        if count == batch_size:
            return step(tiles)
        filler = tiles[-1:].expand(batch_size - count, *tiles.shape[1:])  # (P, C, h, w)
        clean, timesteps = step(torch.cat((tiles, filler)))
        return clean[:count], timesteps[:count]

    return padded_step
