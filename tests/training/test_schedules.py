"""The learning-rate schedules step exactly as the supplement specifies."""

from __future__ import annotations

import pytest
import torch

from model.training.schedules import halving_factor, halving_schedule
from model.training.stages import get_stage


@pytest.mark.parametrize(
    ("name", "optimizer", "lr", "halve_every", "iterations"),
    [
        ("stage1", "adam", 2e-4, 50_000, 200_000),
        ("stage2", "adamw", 3e-4, 15_000, 50_000),
        ("stage3", "adamw", 1e-5, None, 10_000),
    ],
)
def test_stage_defaults_are_the_supplements_recipe(name, optimizer, lr, halve_every, iterations):
    stage = get_stage(name)
    assert (stage.optimizer, stage.lr, stage.halve_every, stage.iterations) == (optimizer, lr, halve_every, iterations)


@pytest.mark.parametrize(
    ("step", "factor"),
    [(0, 1.0), (49_999, 1.0), (50_000, 0.5), (99_999, 0.5), (100_000, 0.25), (150_000, 0.125), (199_999, 0.125)],
)
def test_stage1_rate_halves_every_50k(step, factor):
    assert halving_factor(50_000)(step) == factor


def test_stage2_rate_at_its_boundaries():
    f = halving_factor(15_000)
    assert [f(s) for s in (0, 14_999, 15_000, 29_999, 30_000, 45_000, 49_999)] == [1, 1, 0.5, 0.5, 0.25, 0.125, 0.125]


def test_constant_schedule_never_changes():
    f = halving_factor(None)
    assert {f(s) for s in (0, 1, 9_999, 10_000, 10**7)} == {1.0}


def test_scheduler_steps_exactly_once_per_call():
    """The rate the optimiser uses at step k (0-based) is base·0.5^(k // 3)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=3e-4)
    schedule = halving_schedule(optimizer, 3)
    used = []
    for _ in range(10):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert used == pytest.approx([3e-4 * 0.5 ** (k // 3) for k in range(10)], rel=0, abs=1e-15)


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="halve_every"):
        halving_factor(0)
