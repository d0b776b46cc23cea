"""``lr_worst``: the thumbnail's worst 4x4 window error against bicubic, off by default, on with --loss-weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.pipeline import TADMPipeline
from model.training import stages
from model.training.losses import worst_block_mse


def windows_by_loop(y: np.ndarray, target: np.ndarray, block: int) -> np.ndarray:
    """(B,) worst window MSE, written as plain loops over every window of (B,C,H,W) arrays."""
    squared = ((y - target) ** 2).mean(axis=1)
    batch, h, w = squared.shape
    worst = np.zeros(batch)
    for b in range(batch):
        worst[b] = max(squared[b, i:i + block, j:j + block].mean()
                       for i in range(h - block + 1) for j in range(w - block + 1))
    return worst


def test_it_is_each_thumbnails_worst_window_averaged_over_the_batch():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 12, 10, generator=generator) * 2 - 1
    y = target + 0.02 * torch.randn(2, 3, 12, 10, generator=generator)
    y[0, 1, 5:9, 2:6] += 0.6  # a green blotch on the first thumbnail
    expected = windows_by_loop(y.numpy(), target.numpy(), 4)
    assert expected[0] > 50 * expected[1]  # the blotch, not the grain, is the first one's worst
    assert float(worst_block_mse(y, target)) == pytest.approx(expected.mean(), rel=1e-5)
    # The mean error that lr_guidance takes hides the blotch: its window is 16 of 120 pixels.
    assert float(torch.nn.functional.mse_loss(y, target)) < expected[0] / 5


def test_a_thumbnail_smaller_than_the_window_is_one_window():
    target = torch.zeros(1, 3, 2, 3)
    y = torch.full((1, 3, 2, 3), 0.5)
    assert float(worst_block_mse(y, target)) == pytest.approx(0.25)


def test_its_gradient_reaches_only_the_worst_window():
    target = torch.zeros(1, 3, 16, 16)
    y = (0.05 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))).requires_grad_()
    with torch.no_grad():
        y[0, :, 8:12, 3:7] += 0.4
    worst_block_mse(y, target).backward()
    touched = y.grad.abs().sum(dim=1)[0] > 0
    assert touched[8:12, 3:7].all() and int(touched.sum()) == 16


@pytest.fixture(scope="module")
def pipe() -> TADMPipeline:
    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


@pytest.mark.parametrize("stage_name", ["stage1", "stage3"])
def test_the_stages_compute_it_at_weight_zero_and_a_weight_turns_it_on(pipe, stage_name):
    stage = stages.get_stage(stage_name)
    assert stage.loss_weights["lr_worst"] == 0.0
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1

    def terms(weights):
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same quantisation noise for both
            return stage.loss(pipe, x, pipe.encode_latent(x), None, weights)

    off, on = terms(stage.loss_weights), terms(stages.loss_weights(stage, {"lr_worst": 2.0}))
    assert float(off["lr_worst"]) >= float(off["lr_guidance"]) > 0  # a worst window is at least the mean
    assert float(on["loss"] - off["loss"]) == pytest.approx(2.0 * float(off["lr_worst"]), rel=1e-4)


def test_stage2_has_no_thumbnail_term_to_weigh():
    with pytest.raises(ValueError, match="no loss term 'lr_worst'"):
        stages.loss_weights(stages.get_stage("stage2"), {"lr_worst": 1.0})
