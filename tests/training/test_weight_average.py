"""The weight average (``tadm train --ema-decay``): the arithmetic, the model a stage writes from it, a resumed
run that continues the same average, and ``from_checkpoint --averaged``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from model.pipeline import TADMPipeline
from model.training.checkpointing import latest_checkpoint
from model.training.from_checkpoint import main, model_from_checkpoints
from model.training.trainer import train
from model.training.weight_average import AVERAGED_FILE, WeightAverage

from .conftest import small_run


def test_the_average_follows_its_formula_and_round_trips(tmp_path):
    weight = torch.nn.Parameter(torch.tensor([0.0, 4.0]))
    average = WeightAverage({"w": weight}, decay=0.75)
    for value in ([4.0, 0.0], [8.0, 8.0]):
        with torch.no_grad():
            weight.copy_(torch.tensor(value))
        average.update({"w": weight})
    # 0.75 * (0.75 * start + 0.25 * first) + 0.25 * second
    expected = 0.75 * (0.75 * torch.tensor([0.0, 4.0]) + 0.25 * torch.tensor([4.0, 0.0])) + 0.25 * torch.tensor([8.0, 8.0])
    torch.testing.assert_close(average.shadow["w"], expected)
    average.save(tmp_path)
    restored = WeightAverage({"w": weight}, decay=0.75)
    assert not torch.equal(restored.shadow["w"], expected)  # it starts from the weights...
    assert restored.load(tmp_path)  # ...until the saved average replaces them
    torch.testing.assert_close(restored.shadow["w"], expected)
    restored.copy_to({"w": weight})
    torch.testing.assert_close(weight.detach(), expected)
    assert not WeightAverage({"w": weight}, 0.5).load(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="other parameters"):
        WeightAverage({"v": weight}, 0.5).load(tmp_path)
    for decay in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            WeightAverage({"w": weight}, decay)


def dfrm_weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "dfrm" / "diffusion_pytorch_model.safetensors"))


def test_a_stage_writes_the_average_and_a_resumed_run_continues_it(tmp_path, photo_folder):
    options = dict(preset="tiny", iterations=4, checkpoint_every=2, lr=2e-3, ema_decay=0.5)
    straight = train(small_run("stage1", tmp_path / "straight", photo_folder, **options))
    entry = json.loads((straight / "training.json").read_text())["stages"][-1]
    assert entry["ema_decay"] == 0.5

    # the written model is the checkpoint's average, not the last step's weights
    last = latest_checkpoint(tmp_path / "straight")
    assert last is not None and last.name == "step-00000004"
    averaged, weights = load_file(str(last / AVERAGED_FILE)), load_file(str(last / "trainable.safetensors"))
    written = dfrm_weights(straight)
    assert any(not torch.equal(averaged[k], weights[k]) for k in averaged)
    for name, tensor in averaged.items():
        if name.startswith("dfrm."):
            torch.testing.assert_close(written[name.removeprefix("dfrm.")], tensor, rtol=0, atol=0)

    # stopped after two steps and resumed: the same average at the end as the straight run's
    interrupted = tmp_path / "interrupted"
    train(small_run("stage1", interrupted, photo_folder, **{**options, "iterations": 2}))
    resumed = train(small_run("stage1", interrupted, photo_folder, resume=True, **options))
    a, b = dfrm_weights(straight), dfrm_weights(resumed)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)

    # a run without the average writes the last step's weights and records none
    plain = train(small_run("stage1", tmp_path / "plain", photo_folder, **{**options, "ema_decay": None}))
    assert json.loads((plain / "training.json").read_text())["stages"][-1]["ema_decay"] is None
    assert not (latest_checkpoint(tmp_path / "plain") / AVERAGED_FILE).exists()


def test_from_checkpoint_takes_the_average_when_asked(tmp_path, photo_folder, capsys):
    start = train(small_run("stage1", tmp_path / "s1", photo_folder, preset="tiny", iterations=1))
    written = train(small_run("stage3", tmp_path / "s3", photo_folder, init=start, iterations=2,
                              checkpoint_every=2, ema_decay=0.5, check_previous_stage=False))
    checkpoint = tmp_path / "s3" / "checkpoints" / "step-00000002"
    assert main(["stage3", str(start), str(checkpoint), "-o", str(tmp_path / "avg"), "--averaged"]) == 0
    model_from_checkpoints("stage3", start, [checkpoint], tmp_path / "raw")
    ids = {name: TADMPipeline.from_pretrained(tmp_path / name).model_id for name in ("avg", "raw")}
    assert ids["avg"] == TADMPipeline.from_pretrained(written).model_id  # what the stage wrote
    assert ids["raw"] != ids["avg"]  # the average is not the step's weights: the equality above is not vacuous

    train(small_run("stage3", tmp_path / "p3", photo_folder, init=start, iterations=1, checkpoint_every=1,
                    check_previous_stage=False))
    no_average = tmp_path / "p3" / "checkpoints" / "step-00000001"
    assert main(["stage3", str(start), str(no_average), "-o", str(tmp_path / "none"), "--averaged"]) == 2
    assert "holds no weight average" in capsys.readouterr().err
