"""Training that accumulates across runs: a stage continued from an earlier run's model directory keeps
the earlier segments in training.json, a fresh optimiser warms up, and a 32x model can start from the 16x
model's backbone."""

from __future__ import annotations

import json

import torch

from model import lora
from model.pipeline import TADMPipeline
from model.training import history
from model.training.trainer import train

from .conftest import small_run


def test_a_continued_stage_adds_a_segment_and_keeps_the_evaluations(tmp_path, photo_folder):
    first = train(small_run("stage1", tmp_path / "session1", photo_folder, preset="tiny", iterations=3))
    # what scripts/ship.py records when it ships the model: carried into every model continued from it
    measured = {"psnr_y": 20.5, "set": "kodak-24", "cumulative_steps": {"stage1": 3}}
    history.write(first, {**history.read(first), "evaluations": [measured]})

    second = train(small_run("stage1", tmp_path / "session2", photo_folder, init=first, iterations=4,
                             warmup_steps=4))
    record = history.read(second)
    assert [(s["stage"], s["iterations"]) for s in record["stages"]] == [("stage1", 3), ("stage1", 4)]
    assert record["cumulative_steps"] == {"stage1": 7}
    assert record["stages"][-1]["warmup_steps"] == 4 and record["stages"][-1]["finished_at"].endswith("Z")
    assert record["evaluations"] == [{"psnr_y": 20.5, "set": "kodak-24", "cumulative_steps": {"stage1": 3}}]
    rates = [json.loads(line)["lr"] for line in (tmp_path / "session2" / "log.jsonl").read_text().splitlines()]
    # the log gives the rate after each step (the next step's): steps ran at 1/4, 2/4, 3/4, then all of 1e-3
    assert rates == [5e-4, 7.5e-4, 1e-3, 1e-3]


def test_the_first_format_is_read_as_its_stage_entries(tmp_path):
    (tmp_path / "training.json").write_text(json.dumps([{"stage": "stage0", "iterations": 5},
                                                        {"stage": "stage0", "iterations": 2}]))
    record = history.read(tmp_path)
    assert record["cumulative_steps"] == {"stage0": 7} and record["evaluations"] == []
    assert history.last_stage(record) == "stage0"


def test_a_32x_model_starts_from_the_16x_backbone(tmp_path, photo_folder):
    donor = TADMPipeline.from_preset("tiny", scale=16, pretrained=False, seed=7)
    donor_dir = donor.save_pretrained(tmp_path / "donor")
    # the donor's backbone was made by two stage-0 segments; its own stage-1 segment is not the 32x model's
    history.write(donor_dir, {"stages": [{"stage": "stage0", "iterations": 5}, {"stage": "stage0", "iterations": 2},
                                         {"stage": "stage1", "iterations": 9}], "evaluations": []})
    model_dir = train(small_run("stage1", tmp_path / "run32", photo_folder, preset="tiny", scale=32,
                                backbone=donor_dir, iterations=1))
    trained = TADMPipeline.from_pretrained(model_dir)
    fresh = TADMPipeline.from_preset("tiny", scale=32, pretrained=False)
    assert trained.scale == 32
    for name in ("vae", "unet"):
        theirs = dict(getattr(donor, name).named_parameters())
        mine = dict(getattr(trained, name).named_parameters())
        base = [k for k in mine if not lora.is_adapter_key(k)]
        assert base and all(torch.equal(mine[k], theirs[k]) for k in base)
        fresh_params = dict(getattr(fresh, name).named_parameters())
        assert any(not torch.equal(mine[k], fresh_params[k]) for k in base), "the seed-0 backbone was kept"
    assert torch.equal(trained.empty_prompt, donor.empty_prompt)
    record = history.read(model_dir)
    assert record["stages"][-1]["backbone"] == str(donor_dir)
    assert record["cumulative_steps"] == {"stage0": 7, "stage1": 1}
