"""The UNet's attention processors, and self-attention over pooled keys and values.

On a CPU most of a reconstruction's time is the UNet's self-attention at its finest attention level: the nano 32x
model's 128x128 latent tiles give 64x64 = 4,096 tokens there, and every head scores every pair (54 % of the time
at 2048x2048 on two cores of an AMD EPYC, ``scripts/bench_upscale.py --top-ops``). A model may instead let those
queries attend to keys and values averaged over ``pool x pool`` tokens: the same projections, applied to the
average of the hidden states (a linear map commutes with averaging), so 4x fewer scores for ``pool = 2``. Queries
stay at full resolution, so the output keeps its grid; what changes is that each query sees its neighbours' mean
instead of each neighbour. The coarser levels (1,024 tokens) and every cross-attention are computed exactly.

Which models pool is a property of the preset and scale (``Preset.attention_pool_for``), like their tiles: it
changes results slightly, as the tiles do, and the thumbnail does not depend on it (the model id does not
either). The nano preset pools its 32x model by 2; ``use_attention_pool`` (``--attention-pool`` of ``tadm
upscale``, ``tadm eval`` and ``scripts/bench_upscale.py``) serves a model with another pool. What it costs in
quality and gains in time: docs/models.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel


class PooledSelfAttention:
    """A diffusers attention processor: self-attention whose keys and values are the hidden states averaged over
    ``pool x pool`` tokens of the (height, width) grid in :attr:`grid`, which a hook on the enclosing
    transformer sets before every call (the processor sees the tokens flattened). Anything else it is handed
    (cross-attention, a mask, normalisations this UNet's blocks do not use) goes to ``exact``. The grid is
    kept per thread: a worker may run the UNet for an upload and for a reconstruction at once."""

    def __init__(self, pool: int, exact: Callable[..., torch.Tensor] | None = None) -> None:
        if pool < 2:
            raise ValueError(f"`pool` must be at least 2 but is {pool}")
        self.pool = pool
        self.exact = exact or AttnProcessor2_0()
        self._local = threading.local()

    @property
    def grid(self) -> tuple[int, int] | None:
        return getattr(self._local, "grid", None)

    @grid.setter
    def grid(self, value: tuple[int, int] | None) -> None:
        self._local.grid = value

    def __getstate__(self) -> dict:  # a copy of the UNet (a weight average, a saved one) copies its processors
        return {"pool": self.pool, "exact": self.exact}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["pool"], state["exact"])  # type: ignore[misc]

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        batch, tokens, channels = hidden_states.shape
        simple = (encoder_hidden_states is None and attention_mask is None and attn.group_norm is None
                  and attn.spatial_norm is None and attn.norm_q is None and attn.norm_k is None
                  and not attn.residual_connection and attn.rescale_output_factor == 1.0)
        if not simple or self.grid is None or self.grid[0] * self.grid[1] != tokens:
            return self.exact(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        height, width = self.grid
        spatial = hidden_states.transpose(1, 2).reshape(batch, channels, height, width)
        # ceil_mode without the padding in the count: an odd side's last row averages what it has
        pooled = F.avg_pool2d(spatial, self.pool, ceil_mode=True, count_include_pad=False)
        pooled = pooled.flatten(2).transpose(1, 2)
        heads = attn.heads
        query, key, value = attn.to_q(hidden_states), attn.to_k(pooled), attn.to_v(pooled)
        head_dim = query.shape[-1] // heads
        query, key, value = (x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out))  # linear, dropout


def finest_attention_transformers(unet: UNet2DConditionModel) -> list[Any]:
    """The transformers of the UNet's finest attention level: of the first down block that has attentions and
    of the up block that mirrors it."""
    levels = [i for i, block in enumerate(unet.down_blocks) if getattr(block, "attentions", None)]
    if not levels:
        return []
    finest = levels[0]
    mirror = unet.up_blocks[len(unet.up_blocks) - 1 - finest]
    return [*unet.down_blocks[finest].attentions, *getattr(mirror, "attentions", [])]


# The attribute of a transformer that holds the hook feeding its pooled processors their grid.
GRID_HOOK = "_tadm_grid_hook"


def _record_grid(transformer: Any, args: tuple, kwargs: dict) -> None:
    """Before a transformer runs: give its pooled processors the (height, width) of its input. A function of the
    module it is called with, not a closure, so that a copy of the UNet feeds its own processors."""
    hidden = args[0] if args else kwargs["hidden_states"]
    grid = (int(hidden.shape[-2]), int(hidden.shape[-1]))
    for block in transformer.transformer_blocks:
        if isinstance(block.attn1.processor, PooledSelfAttention):
            block.attn1.processor.grid = grid


def set_unet_attention(unet: UNet2DConditionModel, exact: Callable[..., torch.Tensor] | None = None,
                       pool: int = 1) -> int:
    """Install ``exact`` (default: diffusers' SDPA processor) on every attention of ``unet`` and, for ``pool``
    >= 2, :class:`PooledSelfAttention` on the self-attention of its finest level (on top of ``exact`` for
    anything it does not pool). Calling it again replaces what an earlier call installed. Returns how many
    self-attentions pool."""
    exact = exact or AttnProcessor2_0()
    unet.set_attn_processor(exact)
    pooled = 0
    for transformer in finest_attention_transformers(unet):
        handle = getattr(transformer, GRID_HOOK, None)
        if handle is not None:
            handle.remove()
            setattr(transformer, GRID_HOOK, None)
        if pool < 2:
            continue
        processor = PooledSelfAttention(pool, exact)
        setattr(transformer, GRID_HOOK, transformer.register_forward_pre_hook(_record_grid, with_kwargs=True))
        for block in transformer.transformer_blocks:
            block.attn1.set_processor(processor)
            pooled += 1
    return pooled


def use_attention_pool(pipe: Any, pool: int) -> None:
    """Serve ``pipe`` (a :class:`~model.pipeline.TADMPipeline`, which imports this module) with its finest
    self-attention pooled by ``pool`` (1: exact) instead of its preset's choice: for benchmarks and comparisons
    (the serving switches applied after it keep it)."""
    pipe.attention_pool = pool
    set_unet_attention(pipe.unet, pool=pool)
