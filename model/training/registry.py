"""The stage registry: the :class:`Stage` record and the table of registered stages.

Stages are data; :func:`register_stage` adds one, so that a stage defined in its own module (the nano backbone's
``stage0``) plugs in without touching the trainer. This module imports nothing else of the training package, so
that a stage module and the trainer can both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

NamedParameters = dict[str, nn.Parameter]


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: the CLI name (``stage1``...).
        summary: one line for ``--help``.
        trainable: pipeline -> the parameters this stage trains, by qualified name; nothing else gets gradients.
        loss: ``(pipe, x, z, perceptual, weights) -> {term: tensor, ..., "loss": total}``, the total weighting
            each term by ``weights`` (terms without a weight are logged only).
        loss_weights: the stage's default ``weights`` (the supplement's); ``tadm train --loss-weight`` overrides
            them by name.
        optimizer: ``adam`` or ``adamw``.
        lr, halve_every, iterations: the schedule (``halve_every=None``: constant rate).
        uses_perceptual: whether the loss has LPIPS/DISTS terms (and so needs their weights or a substitute).
        previous: the stage whose model directory this one starts from (None: may start from a preset).
    """

    name: str
    summary: str
    trainable: Callable[[object], NamedParameters]
    loss: Callable[..., dict]
    loss_weights: Mapping[str, float]
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


def loss_weights(stage: Stage, overrides: Mapping[str, float]) -> dict[str, float]:
    """The stage's loss weights with ``overrides`` (by term name) in place; a name the stage does not weight, or a
    negative weight, is refused with the names it has."""
    unknown = sorted(set(overrides) - set(stage.loss_weights))
    if unknown:
        raise ValueError(f"{stage.name} has no loss term {', '.join(map(repr, unknown))}; its weighted terms are "
                         f"{', '.join(sorted(stage.loss_weights))}")
    negative = sorted(name for name, value in overrides.items() if value < 0)
    if negative:
        raise ValueError(f"loss weights must be >= 0 but {', '.join(negative)} is negative")
    return {**stage.loss_weights, **overrides}


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose one of {sorted(STAGES)}")
    return STAGES[name]
