"""LoRA attachment with peft (the supplement's training details): where the adapters go and how their weights are saved.

The targets are data, not loops: a suffix list for the UNet and a regex for the VAE decoder. The adapter names
("default" for the UNet, "vae_skip" for the VAE) match the authors' code, so that their state dicts load as is.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

UNET_LORA_TARGETS = [
    "to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out",
    "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
]
VAE_LORA_TARGETS = r"^decoder\..*(conv1|conv2|conv_in|conv_shortcut|conv|conv_out|to_k|to_q|to_v|to_out\.0)$"
UNET_ADAPTER = "default"
VAE_ADAPTER = "vae_skip"
# The UNet's input conv is trained in full (not through LoRA) and saved with the adapters.
UNET_FULL_TRAINED = ("conv_in.weight", "conv_in.bias")


def attach_unet_lora(unet: Any, rank: int, init: Any = "gaussian", alpha: float | None = None) -> None:
    """Add the UNet adapter (rank ``rank``; alpha ``alpha``, else peft's default) on the supplement's targets."""
    scale = {} if alpha is None else {"lora_alpha": alpha}
    unet.add_adapter(LoraConfig(r=rank, init_lora_weights=init, target_modules=UNET_LORA_TARGETS, **scale),
                     UNET_ADAPTER)


def attach_vae_lora(vae: Any, rank: int, init: Any = "gaussian") -> None:
    """Add the VAE adapter on the decoder only (the encoder stays frozen and adapter-free)."""
    vae.add_adapter(LoraConfig(r=rank, init_lora_weights=init, target_modules=VAE_LORA_TARGETS), VAE_ADAPTER)


def is_adapter_key(key: str) -> bool:
    return "lora_" in key


def adapter_state_dict(module: nn.Module, extra: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The adapter entries of ``module.state_dict()`` (peft names, adapter name included) plus ``extra`` keys."""
    state = module.state_dict()
    picked = {k: v for k, v in state.items() if is_adapter_key(k)}
    for key in extra:
        picked[key] = state[_resolve_base_key(state, key)]
    return picked


def load_adapter_state_dict(
    module: nn.Module, weights: dict[str, torch.Tensor], what: str, required: tuple[str, ...] = ()
) -> None:
    """Load adapter entries strictly: every adapter key of ``module`` and every ``required`` plain key must be
    given, and nothing else."""
    state = module.state_dict()
    expected = {k for k in state if is_adapter_key(k)} | set(required)
    missing = sorted(expected - set(weights))
    unexpected = sorted(k for k in weights if k not in state and _resolve_base_key(state, k) not in state)
    if missing or unexpected:
        raise KeyError(
            f"{what}: adapter weights do not match the model: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    with torch.no_grad():
        for key, value in weights.items():
            target = state[key] if key in state else state[_resolve_base_key(state, key)]
            if target.shape != value.shape:
                raise ValueError(f"{what}: `{key}` has shape {tuple(value.shape)}, the model {tuple(target.shape)}")
            target.copy_(value)


def _resolve_base_key(state: dict, key: str) -> str:
    """A plain key (``conv_in.weight``) may live under peft's ``base_layer`` when that module is wrapped."""
    if key in state:
        return key
    head, _, leaf = key.rpartition(".")
    return f"{head}.base_layer.{leaf}"


def base_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own weights without adapters, under the names of the unwrapped module."""
    return {k.replace(".base_layer.", "."): v for k, v in module.state_dict().items() if not is_adapter_key(k)}


def lora_layers(module: nn.Module) -> list[tuple[str, BaseTunerLayer]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, BaseTunerLayer)]


def merge_lora(module: nn.Module) -> int:
    """Fold every adapter into its base weight (serving: no extra matmuls). Returns the number of layers merged."""
    layers = lora_layers(module)
    for _, layer in layers:
        if not layer.merged:
            layer.merge()
    return len(layers)


def unmerge_lora(module: nn.Module) -> None:
    for _, layer in lora_layers(module):
        if layer.merged:
            layer.unmerge()
