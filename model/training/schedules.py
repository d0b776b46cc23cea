"""Learning-rate schedules of the supplement: a constant rate halved every N optimiser steps, optionally after
a linear warm-up (a fresh optimiser on weights trained in an earlier run)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def halving_factor(halve_every: int | None, warmup: int = 0) -> Callable[[int], float]:
    """``step -> 0.5 ** (step // halve_every)`` (constant 1.0 when ``halve_every`` is None), times
    ``(step + 1) / warmup`` during the first ``warmup`` steps."""
    if halve_every is not None and halve_every < 1:
        raise ValueError(f"`halve_every` must be a positive number of steps or None but is {halve_every}")
    if warmup < 0:
        raise ValueError(f"`warmup` must be a number of steps >= 0 but is {warmup}")

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return ramp * (1.0 if halve_every is None else 0.5 ** (step // halve_every))

    return factor


def halving_schedule(optimizer: torch.optim.Optimizer, halve_every: int | None,
                     warmup: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler whose rate after ``k`` calls of ``step()`` is ``base_lr * 0.5 ** (k // halve_every)``, ramped
    linearly over the first ``warmup`` steps."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, halving_factor(halve_every, warmup))
