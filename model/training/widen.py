"""Widen and deepen a trained DFRM's G_d without changing what it computes, so training continues from it.

G_d (``final_module``) is ``ConvBlock(3, dc)``, ``Resblock(dc)`` x n, then per doubling ``PixelShuffle(2)`` and a
ConvBlock (the last one writes the latent). A wider or deeper G_d is built from the old one by three rules:

* every old output channel reads only the old input channels: the weights from a new input channel are zero;
* a new output channel reads everything with the fresh layer's random weights, so it carries signal, and the
  zero weights leading out of it get gradients from the first step;
* a new Resblock's second conv starts at zero: the block is the identity until it learns.

Channel order keeps this exact: PixelShuffle maps input channels 4c..4c+3 to output channel c, so channels kept
first before a shuffle are kept first after it. Everything outside G_d is copied as it is.
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
    wider.to(dfrm.device)

    ours = {k: v for k, v in dfrm.state_dict().items() if not k.startswith("final_module.")}
    wider.load_state_dict(ours, strict=False)  # G_e and F unchanged; G_d follows
    with torch.no_grad():
        for old_module, new_module in _paired_decoder_modules(dfrm.final_module, wider.final_module, old_blocks):
            if old_module is None:  # a new Resblock: identity until trained
                zero_init(new_module.res_block[2])
                continue
            for old_conv, new_conv in zip(_convs(old_module), _convs(new_module), strict=True):
                _embed(old_conv, new_conv)
    return wider.train(dfrm.training)


def _paired_decoder_modules(old: nn.Sequential, new: nn.Sequential, old_blocks: int):
    """(old module or None, new module) for every module of the new G_d that holds weights."""
    old_modules, new_modules = list(old), list(new)
    new_blocks = sum(isinstance(m, Resblock) for m in new_modules)
    yield old_modules[0], new_modules[0]
    for i in range(new_blocks):
        yield (old_modules[1 + i] if i < old_blocks else None), new_modules[1 + i]
    for old_tail, new_tail in zip(old_modules[1 + old_blocks:], new_modules[1 + new_blocks:], strict=True):
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
