from __future__ import annotations

import pytest
import torch

from model.scheduler import FixedOneStep, HybridScheduler, Refiner
from model.tpm import TimestepPredictor

SD_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
               "num_train_timesteps": 1000, "prediction_type": "epsilon"}


def test_tpm_output_range_and_shape(generator):
    tpm = TimestepPredictor(channels=8, num_res_blocks=1, mlp_hidden=16, mlp_depth=1)
    with torch.no_grad():
        for p in tpm.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
        for scale in (0.01, 1.0, 100.0):
            t = tpm(torch.randn(5, 4, 12, 12, generator=generator) * scale)
            assert t.shape == (5,)
            assert t.min() >= 10 and t.max() <= 200


def test_tpm_gives_different_timesteps_for_different_content(generator):
    tpm = TimestepPredictor()
    flat = torch.zeros(1, 4, 16, 16)
    textured = torch.randn(1, 4, 16, 16, generator=generator) * 3
    with torch.no_grad():
        t = tpm(torch.cat([flat, textured]))
    assert t[0] != t[1]


def test_paper_sizes():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(TimestepPredictor()) == pytest.approx(1.2e6, rel=0.01)
    assert count(Refiner()) == pytest.approx(0.46e6, rel=0.01)


def test_fixed_one_step_matches_the_published_coefficients():
    fixed = FixedOneStep(SD_SCHEDULE, t0=50)
    assert 1 / fixed.sqrt_acp == pytest.approx(1.02513, abs=1e-5)
    assert fixed.sqrt_one_minus_acp / fixed.sqrt_acp == pytest.approx(0.22558, abs=1e-5)


def test_scheduler_equals_fixed_formula_at_initialisation(generator):
    scheduler = HybridScheduler(Refiner(), SD_SCHEDULE)
    z = torch.randn(2, 4, 8, 8, generator=generator)
    eps = torch.randn(2, 4, 8, 8, generator=generator)
    t = torch.tensor([20.0, 150.0])
    expected = (z - scheduler.fixed.sqrt_one_minus_acp * eps) / scheduler.fixed.sqrt_acp
    assert torch.equal(scheduler(z, eps, t), expected)


def test_refiner_changes_output_once_trained_and_depends_on_t(generator):
    refiner = Refiner(channels=8, num_res_blocks=2)
    with torch.no_grad():
        for p in refiner.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    z, eps = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 4, 8, 8, generator=generator)
    out_low, out_high = refiner(z, eps, torch.tensor([10.0])), refiner(z, eps, torch.tensor([200.0]))
    assert out_low.abs().max() > 0
    assert not torch.allclose(out_low, out_high)


def test_prediction_type_is_read_from_the_schedule(generator):
    z, out = torch.randn(1, 4, 4, 4, generator=generator), torch.randn(1, 4, 4, 4, generator=generator)
    v = FixedOneStep({**SD_SCHEDULE, "prediction_type": "v_prediction"})
    assert torch.allclose(v(z, out), v.sqrt_acp * z - v.sqrt_one_minus_acp * out)
    assert torch.equal(FixedOneStep({**SD_SCHEDULE, "prediction_type": "sample"})(z, out), out)
    with pytest.raises(ValueError, match="prediction_type"):
        FixedOneStep({**SD_SCHEDULE, "prediction_type": "flow"})
