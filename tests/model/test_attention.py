"""Self-attention over pooled keys and values (model.attention): what it computes, where it is installed, and
that the serving switches keep it. Real diffusers ``Attention`` and ``UNet2DConditionModel`` in tiny configs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from model import TADMPipeline, backbones
from model.attention import (
    GRID_HOOK,
    PooledSelfAttention,
    finest_attention_transformers,
    set_unet_attention,
    use_attention_pool,
)
from model.performance import optimize_for_inference


def by_hand(attn: Attention, x: torch.Tensor, grid: tuple[int, int], pool: int) -> torch.Tensor:
    """The pooled attention written out: keys and values from the mean of each pool x pool cell of the grid (the
    cells at an odd border hold fewer tokens), softmax of the scaled scores, per head."""
    batch, _, channels = x.shape
    height, width = grid
    spatial = x.reshape(batch, height, width, channels)
    cells = [spatial[:, r:r + pool, c:c + pool].mean(dim=(1, 2))
             for r in range(0, height, pool) for c in range(0, width, pool)]
    pooled = torch.stack(cells, dim=1)
    heads = attn.heads
    q, k, v = attn.to_q(x), attn.to_k(pooled), attn.to_v(pooled)
    d = q.shape[-1] // heads
    q, k, v = (t.reshape(batch, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(batch, -1, heads * d)
    return attn.to_out[0](out)


@pytest.mark.parametrize("grid", [(6, 8), (5, 7)])
def test_pooled_attention_is_attention_over_cell_means(grid):
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=4, dim_head=4).eval()
    x = torch.randn(2, grid[0] * grid[1], 16)
    processor = PooledSelfAttention(2)
    processor.grid = grid
    with torch.no_grad():
        pooled = processor(attn, x)
        exact = AttnProcessor2_0()(attn, x)
        expected = by_hand(attn, x, grid, 2)
    assert pooled.shape == x.shape
    assert torch.allclose(pooled, expected, atol=1e-5)
    assert not torch.allclose(pooled, exact, atol=1e-3)  # it does approximate: each query sees cell means


def test_pooled_attention_hands_what_it_does_not_pool_to_the_exact_processor():
    torch.manual_seed(0)
    cross = Attention(query_dim=16, heads=4, dim_head=4, cross_attention_dim=8).eval()
    attn = Attention(query_dim=16, heads=4, dim_head=4).eval()
    x, context = torch.randn(1, 48, 16), torch.randn(1, 5, 8)
    processor = PooledSelfAttention(2)
    processor.grid = (6, 8)
    with torch.no_grad():
        assert torch.equal(processor(cross, x, context), AttnProcessor2_0()(cross, x, context))
        processor.grid = (7, 8)  # a grid that is not this call's: no pooling
        assert torch.equal(processor(attn, x), AttnProcessor2_0()(attn, x))
    with pytest.raises(ValueError, match="pool"):
        PooledSelfAttention(1)


def pooled_processors(unet) -> list[PooledSelfAttention]:
    return [p for p in unet.attn_processors.values() if isinstance(p, PooledSelfAttention)]


def test_only_the_finest_level_pools_and_calling_again_restores_exact_attention(tiny_pipe):
    unet = copy.deepcopy(tiny_pipe.unet)
    sample = torch.randn(2, unet.config.in_channels, 12, 16, generator=torch.Generator().manual_seed(1))
    context = torch.zeros(2, 77, unet.config.cross_attention_dim)
    timestep = torch.tensor([20.0, 80.0])
    with torch.no_grad():
        exact = unet(sample, timestep, encoder_hidden_states=context).sample
        finest = finest_attention_transformers(unet)
        assert finest and all(t in list(unet.down_blocks[0].attentions) + list(unet.up_blocks[-1].attentions)
                              for t in finest)
        count = set_unet_attention(unet, pool=2)
        assert count == sum(len(t.transformer_blocks) for t in finest) == len(pooled_processors(unet))
        pooled = unet(sample, timestep, encoder_hidden_states=context).sample
        # the hook gave each processor the grid of this call (the tiny UNet's finest level is the latent's own)
        assert {p.grid for p in pooled_processors(unet)} == {(12, 16)}
        assert not torch.allclose(pooled, exact, atol=1e-6)
        # a copy (a weight average, say) pools by itself: its hooks feed its own processors
        twin = copy.deepcopy(unet)
        assert torch.equal(twin(sample, timestep, encoder_hidden_states=context).sample, pooled)
        assert {p.grid for p in pooled_processors(twin)} == {(12, 16)}
        assert set_unet_attention(unet, pool=1) == 0 and not pooled_processors(unet)
        assert all(getattr(t, GRID_HOOK, None) is None for t in finest)
        assert torch.allclose(unet(sample, timestep, encoder_hidden_states=context).sample, exact, atol=1e-6)


def test_only_nano_32x_pools_and_the_serving_switches_keep_a_chosen_pool():
    pools = {(name, scale): backbones.get_preset(name).attention_pool_for(scale)
             for name in ("nano", "sd21-base", "tiny") for scale in (16, 32)}
    assert pools.pop(("nano", 32)) == 2 and set(pools.values()) == {1}
    pipe = TADMPipeline.from_preset("nano", scale=16, pretrained=False)
    assert pipe.attention_pool == 1 and not pooled_processors(pipe.unet)
    pipe = TADMPipeline.from_preset("nano", scale=32, pretrained=False)
    assert pipe.attention_pool == 2 and len(pooled_processors(pipe.unet)) == 3  # down 1, up 2 at 64x64 tokens
    use_attention_pool(pipe, 1)
    assert pipe.attention_pool == 1 and not pooled_processors(pipe.unet)
    use_attention_pool(pipe, 2)
    assert pipe.attention_pool == 2 and len(pooled_processors(pipe.unet)) == 3
    applied = optimize_for_inference(pipe, channels_last=False, sdpa=False)
    assert applied.attention_pool == 2
    pooled = pooled_processors(pipe.unet)
    assert len(pooled) == 3 and all(isinstance(p.exact, AttnProcessor) for p in pooled)
    others = [p for p in pipe.unet.attn_processors.values() if not isinstance(p, PooledSelfAttention)]
    assert others and all(isinstance(p, AttnProcessor) for p in others)


def test_each_thread_sees_the_grid_it_set():
    import threading

    processor = PooledSelfAttention(2)
    processor.grid = (64, 64)
    seen = []

    def other() -> None:
        seen.append(processor.grid)  # nothing set in this thread yet
        processor.grid = (40, 30)
        seen.append(processor.grid)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [None, (40, 30)] and processor.grid == (64, 64)
