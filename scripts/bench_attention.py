#!/usr/bin/env python
"""Seconds for the self-attention of the nano UNet's middle level, computed the ways PyTorch offers on a CPU.

The nano 32x model's 128x128 latent tiles give that level 64x64 = 4,096 tokens, 8 heads of 8 channels; at
2048x2048 it runs over 25 tiles in three attention layers, more than half of a CPU reconstruction. Each way is timed
on one batch of tiles (the worker's tile batch, 8) and checked against SDPA's result:

* ``sdpa``: ``F.scaled_dot_product_attention`` as served (PyTorch picks its CPU flash kernel);
* ``math``: the same call restricted to PyTorch's reference path;
* ``chunked``: softmax(QK^T)V by hand, 1,024 queries at a time;
* ``sdpa-bf16``: SDPA on bfloat16 inputs (changes the result by about 1e-2);
* ``compiled``: SDPA under ``torch.compile`` (the first call, compiling, is not timed).

    scripts/bench_attention.py [--tokens 4096] [--heads 8] [--head-dim 8] [--batch 8] [--runs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench_common import median_seconds


def chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    out = torch.empty_like(q)
    keys = k.transpose(-1, -2) * q.shape[-1] ** -0.5
    for start in range(0, q.shape[-2], chunk):
        rows = slice(start, start + chunk)
        out[..., rows, :] = torch.softmax(q[..., rows, :] @ keys, -1) @ v
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, args.heads, args.tokens, args.head_dim)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v)

    def math_path() -> torch.Tensor:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v)

    low = [t.bfloat16() for t in (q, k, v)]
    compiled = torch.compile(F.scaled_dot_product_attention)
    ways: dict[str, Callable[[], torch.Tensor]] = {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
        "math": math_path,
        "chunked": lambda: chunked(q, k, v),
        "sdpa-bf16": lambda: F.scaled_dot_product_attention(*low).float(),
        "compiled": lambda: compiled(q, k, v),
    }
    print(f"{shape} (batch, heads, tokens, channels), {args.threads} threads, median of {args.runs}")
    for name, fn in ways.items():
        error = float((fn() - reference).abs().max())  # also the warm-up (and, for the compiled way, compilation)
        seconds = median_seconds(fn, args.runs)
        print(f"{name:10s} {seconds:7.3f} s   max difference from sdpa {error:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
