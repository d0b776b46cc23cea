"""The stage registry: what each training stage trains, with which optimiser, schedule and loss.

A stage is data (:class:`Stage`); :func:`register_stage` adds one, so that a later stage (the nano backbone's
``stage0``) plugs in without touching the trainer. Defaults are the supplement's recipe (spec section 6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from model import lora

from . import losses

NamedParameters = dict[str, nn.Parameter]


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: the CLI name (``stage1``...).
        summary: one line for ``--help``.
        trainable: pipeline -> the parameters this stage trains, by qualified name; nothing else gets gradients.
        loss: ``(pipe, x, z, perceptual) -> {term: tensor, ..., "loss": total}``.
        optimizer: ``adam`` or ``adamw``.
        lr, halve_every, iterations: the schedule (``halve_every=None``: constant rate).
        uses_perceptual: whether the loss has LPIPS/DISTS terms (and so needs their weights or a substitute).
        previous: the stage whose model directory this one starts from (None: may start from a preset).
    """

    name: str
    summary: str
    trainable: Callable[[object], NamedParameters]
    loss: Callable[..., dict]
    optimizer: str
    lr: float
    halve_every: int | None
    iterations: int
    uses_perceptual: bool
    previous: str | None


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    if stage.name in STAGES:
        raise ValueError(f"stage {stage.name!r} is already registered")
    STAGES[stage.name] = stage
    return stage


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose one of {sorted(STAGES)}")
    return STAGES[name]


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
    trainable=dfrm_parameters, loss=losses.stage1_loss,
    optimizer="adam", lr=2e-4, halve_every=50_000, iterations=200_000, uses_perceptual=False, previous=None,
))
register_stage(Stage(
    name="stage2", summary="UNet LoRA + conv_in, VAE-decoder LoRA, TPM, refiner (AdamW 3e-4, halved every 15K, 50K)",
    trainable=enhancement_parameters, loss=losses.stage2_loss,
    optimizer="adamw", lr=3e-4, halve_every=15_000, iterations=50_000, uses_perceptual=True, previous="stage1",
))
register_stage(Stage(
    name="stage3", summary="all of stages 1 and 2 jointly (AdamW 1e-5, 10K iterations)",
    trainable=joint_parameters, loss=losses.stage3_loss,
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


# Stage 0 (the nano backbone from scratch) lives in its own module and registers itself on import.
from . import stage0 as _stage0  # noqa: E402,F401
