"""The supplement's three stages: what each trains, with which optimiser, schedule and loss.

The registry itself is :mod:`.registry`; importing this module registers stages 1-3 and ``stage0`` (its own
module), so :func:`get_stage` knows every stage. Defaults are the supplement's recipe.
"""

from __future__ import annotations

from torch import nn

from model import lora

from . import losses
from . import stage0 as _stage0  # noqa: F401  (registers stage0)

# The registry's names stay reachable as `stages.*` (the trainer, the command line and the tests use them so).
from .registry import STAGES, NamedParameters, Stage, get_stage, loss_weights, register_stage  # noqa: F401


# -- what each stage trains --------------------------------------------------------------------------------
def _prefixed(prefix: str, module: nn.Module) -> NamedParameters:
    return {f"{prefix}.{name}": p for name, p in module.named_parameters()}


def dfrm_parameters(pipe) -> NamedParameters:
    """Stage 1: the whole DFRM (G_e, G_d and the invertible F)."""
    return _prefixed("dfrm", pipe.dfrm)


def enhancement_parameters(pipe) -> NamedParameters:
    """Stage 2: UNet LoRA + the UNet's conv_in (in full), VAE-decoder LoRA, the TPM and the refiner."""
    params = {f"unet.{n}": p for n, p in pipe.unet.named_parameters() if lora.is_adapter_key(n)}
    for key in lora.UNET_FULL_TRAINED:  # conv_in may sit under peft's base_layer when it is wrapped
        name = lora._resolve_base_key(dict(pipe.unet.named_parameters()), key)
        params[f"unet.{name}"] = pipe.unet.get_parameter(name)
    params.update({f"vae.{n}": p for n, p in pipe.vae.named_parameters() if lora.is_adapter_key(n)})
    params.update(_prefixed("tpm", pipe.tpm))
    params.update(_prefixed("refiner", pipe.refiner))
    return params


def joint_parameters(pipe) -> NamedParameters:
    """Stage 3: everything stages 1 and 2 train."""
    return {**dfrm_parameters(pipe), **enhancement_parameters(pipe)}


register_stage(Stage(
    name="stage1", summary="the DFRM (Adam 2e-4, halved every 50K, 200K iterations)",
    trainable=dfrm_parameters, loss=losses.stage1_loss, loss_weights=losses.STAGE1_WEIGHTS,
    optimizer="adam", lr=2e-4, halve_every=50_000, iterations=200_000, uses_perceptual=False, previous=None,
))
register_stage(Stage(
    name="stage2", summary="UNet LoRA + conv_in, VAE-decoder LoRA, TPM, refiner (AdamW 3e-4, halved every 15K, 50K)",
    trainable=enhancement_parameters, loss=losses.stage2_loss, loss_weights=losses.IMAGE_WEIGHTS,
    optimizer="adamw", lr=3e-4, halve_every=15_000, iterations=50_000, uses_perceptual=True, previous="stage1",
))
register_stage(Stage(
    name="stage3", summary="all of stages 1 and 2 jointly (AdamW 1e-5, 10K iterations)",
    trainable=joint_parameters, loss=losses.stage3_loss, loss_weights=losses.STAGE3_WEIGHTS,
    optimizer="adamw", lr=1e-5, halve_every=None, iterations=10_000, uses_perceptual=True, previous="stage2",
))


def set_trainable(pipe, params: NamedParameters) -> None:
    """Freeze every pipeline weight, then enable gradients on exactly ``params``; modules that own one of them
    go to train mode, the others stay in eval mode (a frozen DFRM keeps rounding its thumbnail)."""
    owned = {id(p) for p in params.values()}
    for module in pipe.modules:
        module.requires_grad_(False)
        has_trainable = any(id(p) in owned for p in module.parameters())
        module.train(has_trainable)
    for p in params.values():
        p.requires_grad_(True)
