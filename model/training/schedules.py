"""Learning-rate schedules of the supplement: a constant rate halved every N optimiser steps."""

from __future__ import annotations

from collections.abc import Callable

import torch


def halving_factor(halve_every: int | None) -> Callable[[int], float]:
    """``step -> 0.5 ** (step // halve_every)``; constant 1.0 when ``halve_every`` is None."""
    if halve_every is not None and halve_every < 1:
        raise ValueError(f"`halve_every` must be a positive number of steps or None but is {halve_every}")

    def factor(step: int) -> float:
        return 1.0 if halve_every is None else 0.5 ** (step // halve_every)

    return factor


def halving_schedule(optimizer: torch.optim.Optimizer, halve_every: int | None) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler whose rate after ``k`` calls of ``step()`` is ``base_lr * 0.5 ** (k // halve_every)``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, halving_factor(halve_every))
