"""A model directory from a running stage's checkpoints: the last one gives the model the stage wrote; several
give the mean of their tensors; a checkpoint of another stage is refused."""

from __future__ import annotations

import pytest
import torch

from model.pipeline import TADMPipeline
from model.training import stages
from model.training.checkpointing import TrainingSetupError
from model.training.from_checkpoint import main, model_from_checkpoints
from model.training.trainer import train

from .conftest import small_run


@pytest.fixture(scope="module")
def stage3_run(tmp_path_factory, photo_folder):
    """stage1 (its model is stage 3's start here), then three stage-3 steps with a checkpoint after each."""
    root = tmp_path_factory.mktemp("from_checkpoint")
    start = train(small_run("stage1", root / "s1", photo_folder, preset="tiny", iterations=1))
    written = train(small_run("stage3", root / "s3", photo_folder, init=start, iterations=3, checkpoint_every=1,
                              check_previous_stage=False))
    return start, written, root / "s3" / "checkpoints"


def trainable(model_dir) -> dict[str, torch.Tensor]:
    pipe = TADMPipeline.from_pretrained(model_dir)
    return {k: v.detach().clone() for k, v in stages.get_stage("stage3").trainable(pipe).items()}


def test_the_last_checkpoint_gives_the_model_the_stage_wrote(stage3_run, tmp_path):
    start, written, checkpoints = stage3_run
    model_from_checkpoints("stage3", start, [checkpoints / "step-00000003"], tmp_path / "last")
    rebuilt, expected = trainable(tmp_path / "last"), trainable(written)
    assert all(torch.equal(rebuilt[k], expected[k]) for k in expected)
    assert TADMPipeline.from_pretrained(tmp_path / "last").model_id == TADMPipeline.from_pretrained(written).model_id


def test_several_checkpoints_give_their_mean(stage3_run, tmp_path):
    start, _, checkpoints = stage3_run
    steps = [checkpoints / f"step-0000000{n}" for n in (2, 3)]
    for n, step in enumerate(steps):
        model_from_checkpoints("stage3", start, [step], tmp_path / f"one{n}")
    assert main(["stage3", str(start), *map(str, steps), "-o", str(tmp_path / "mean")]) == 0
    a, b, mean = trainable(tmp_path / "one0"), trainable(tmp_path / "one1"), trainable(tmp_path / "mean")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the two steps differ, so the mean is a new model
    assert all(torch.allclose(mean[k], (a[k] + b[k]) / 2, atol=1e-6) for k in a)


def test_a_checkpoint_of_another_stage_or_no_checkpoint_is_refused(stage3_run, tmp_path, capsys):
    start, _, checkpoints = stage3_run
    with pytest.raises(TrainingSetupError, match="other parameters than stage1"):
        model_from_checkpoints("stage1", start, [checkpoints / "step-00000001"], tmp_path / "wrong")
    assert main(["stage3", str(start), str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 2
    assert "is not a checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
