"""Widen and deepen a trained DFRM's G_d or G_e without changing what it computes, so training continues from it.

G_d (``final_module``) is ``ConvBlock(3, dc)``, ``Resblock(dc)`` x n, then per doubling ``PixelShuffle(2)`` and a
ConvBlock (the last one writes the latent). G_e's latent branch (``latent_module``) is ``ConvBlock(C, hc)``,
``Resblock(hc)`` x n, then per halving ``PixelUnshuffle(2)`` and a ConvBlock; its fusion (``fusing_module``) is
``Resblock(pc + hc)`` x n and ``ConvBlock(pc + hc, 3)``, which writes the features F turns into the thumbnail. A
wider or deeper module is built from the old one by three rules:

* every old output channel reads only the old input channels: the weights from a new input channel are zero;
* a new output channel reads everything with the fresh layer's random weights, so it carries signal, and the
  zero weights leading out of it get gradients from the first step;
* a new Resblock's second conv starts at zero: the block is the identity until it learns.

Channel order keeps this exact: PixelShuffle maps input channels 4c..4c+3 to output channel c (PixelUnshuffle
channel c to 4c..4c+3), so channels kept first before a shuffle are kept first after it; the fusion reads the pixel
branch's channels, then the latent branch's, so a wider latent branch appends its new channels last there too.
G_e's fusion writes 3 channels whatever its width, and they read only old channels: the thumbnail is unchanged
until training moves the zero weights. Everything outside the grown part is copied as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from model.blocks import Resblock, zero_init
from model.dfrm import DFRM


def widen_decoder(
    dfrm: DFRM,
    *,
    channels: int | None = None,
    res_blocks: int | None = None,
    shuffle_channels: int | None = None,
    seed: int = 0,
) -> DFRM:
    """A DFRM equal to ``dfrm`` (outputs identical up to float rounding) whose G_d has ``channels`` channels,
    ``res_blocks`` Resblocks and ``shuffle_channels`` between its shuffles; ``None`` keeps a size. Sizes may
    only grow. The new weights are seeded by ``seed``."""
    old_channels, old_blocks, old_between = dfrm.decoder_shape
    new_shape = (channels or old_channels, old_blocks if res_blocks is None else res_blocks,
                 shuffle_channels or old_between)
    for name, old, new in zip(("channels", "Resblocks", "width between shuffles"),
                              (old_channels, old_blocks, old_between), new_shape, strict=True):
        if new < old:
            raise ValueError(f"G_d can only grow, but its {name} would go from {old} to {new}")
    kwargs = {k: v for k, v in dfrm.config.items() if not k.startswith("_")}
    kwargs.update(decoder_channels=new_shape[0], decoder_res_blocks=new_shape[1], shuffle_channels=new_shape[2])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wider = DFRM(**kwargs)
    return _grown(dfrm, wider, {"final_module": 1})  # G_e and F unchanged; G_d follows


def widen_encoder(dfrm: DFRM, *, channels: int | None = None, res_blocks: int | None = None, seed: int = 0) -> DFRM:
    """A DFRM equal to ``dfrm`` (same thumbnails and latents up to float rounding) whose G_e latent branch is
    ``channels`` wide (its fusion ``pixel_channels + channels``) with ``res_blocks`` Resblocks in the latent branch
    and in the fusion; ``None`` keeps a size. G_d keeps its size. Sizes may only grow; new weights seeded by
    ``seed``."""
    old_shape = dfrm.encoder_shape
    new_shape = (channels or old_shape[0], old_shape[1] if res_blocks is None else res_blocks)
    for name, old, new in zip(("channels", "Resblocks"), old_shape, new_shape, strict=True):
        if new < old:
            raise ValueError(f"G_e can only grow, but its {name} would go from {old} to {new}")
    kwargs = {k: v for k, v in dfrm.config.items() if not k.startswith("_")}
    decoder = dfrm.decoder_shape  # pinned: G_d's defaults follow G_e's sizes
    kwargs.update(hidden_channels=new_shape[0], num_res_blocks=new_shape[1], decoder_channels=decoder[0],
                  decoder_res_blocks=decoder[1], shuffle_channels=decoder[2])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wider = DFRM(**kwargs)
    return _grown(dfrm, wider, {"latent_module": 1, "fusing_module": 0})


def _grown(old: DFRM, new: DFRM, grown: dict[str, int]) -> DFRM:
    """``new`` (freshly built, larger in the modules ``grown`` names, each with the number of modules before its
    Resblocks) with ``old``'s weights embedded by the rules above and every other tensor copied."""
    new.to(old.device)
    kept = {k: v for k, v in old.state_dict().items() if k.split(".", 1)[0] not in grown}
    new.load_state_dict(kept, strict=False)
    with torch.no_grad():
        for name, head in grown.items():
            for old_module, new_module in _paired_modules(getattr(old, name), getattr(new, name), head):
                if old_module is None:  # a new Resblock: identity until trained
                    zero_init(new_module.res_block[2])
                    continue
                for old_conv, new_conv in zip(_convs(old_module), _convs(new_module), strict=True):
                    _embed(old_conv, new_conv)
    return new.train(old.training)


def _paired_modules(old: nn.Sequential, new: nn.Sequential, head: int):
    """(old module or None, new module) for every module of the new sequence that holds weights: ``head``
    modules, then the Resblocks (new ones appended after the old), then the tail."""
    old_modules, new_modules = list(old), list(new)
    old_blocks = sum(isinstance(m, Resblock) for m in old_modules)
    new_blocks = sum(isinstance(m, Resblock) for m in new_modules)
    yield from zip(old_modules[:head], new_modules[:head], strict=True)
    for i in range(new_blocks):
        yield (old_modules[head + i] if i < old_blocks else None), new_modules[head + i]
    for old_tail, new_tail in zip(old_modules[head + old_blocks:], new_modules[head + new_blocks:], strict=True):
        if _convs(new_tail):
            yield old_tail, new_tail


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _embed(old: nn.Conv2d, new: nn.Conv2d) -> None:
    """Old weights in the first rows and columns; an old output reads nothing from a new input."""
    out_channels, in_channels = old.weight.shape[:2]
    new.weight[:out_channels] = 0
    new.weight[:out_channels, :in_channels] = old.weight
    if old.bias is not None and new.bias is not None:
        new.bias[:out_channels] = old.bias
