"""A few steps of each stage with the tiny preset on a real photograph: the loss goes down, a loadable model
directory comes out, the next stage starts from it, and a resumed run continues exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.pipeline import TADMPipeline
from model.training.trainer import TrainingSetupError, latest_checkpoint, train

from .conftest import fixed_batch_loss, small_run


@pytest.fixture(scope="module")
def chain(tmp_path_factory, photo_folder) -> dict[str, Path]:
    """stage1 from the tiny preset, stage2 from stage1's directory, stage3 from stage2's: the model dirs."""
    root = tmp_path_factory.mktemp("chain")
    dirs = {"stage1": train(small_run("stage1", root / "s1", photo_folder, preset="tiny"))}
    dirs["stage2"] = train(small_run("stage2", root / "s2", photo_folder, init=dirs["stage1"]))
    dirs["stage3"] = train(small_run("stage3", root / "s3", photo_folder, init=dirs["stage2"], lr=3e-4))
    return dirs


def start_of(stage: str, chain: dict[str, Path]) -> TADMPipeline:
    if stage == "stage1":
        return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    return TADMPipeline.from_pretrained(chain[{"stage2": "stage1", "stage3": "stage2"}[stage]])


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_a_few_steps_lower_the_loss_and_write_a_loadable_model(stage, chain, photo_folder):
    before = fixed_batch_loss(start_of(stage, chain), stage, photo_folder)
    trained = TADMPipeline.from_pretrained(chain[stage])
    after = fixed_batch_loss(trained, stage, photo_folder)
    assert after < before, f"{stage}: loss {before:.5f} -> {after:.5f}"
    history = json.loads((chain[stage] / "training.json").read_text())["stages"]
    assert [h["stage"] for h in history] == ["stage1", "stage2", "stage3"][: len(history)]
    assert history[-1]["stage"] == stage
    assert history[-1]["model_id"] == trained.model_id  # what was saved is what loads
    assert history[-1]["resumed_at_step"] == 0 and history[-1]["loop_seconds"] > 0  # the wall time a card quotes


def test_the_log_has_every_step_and_term(chain):
    lines = [json.loads(x) for x in (chain["stage3"].parent / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 7))
    assert {"loss", "mse", "lr_guidance", "latent", "lr", "grad_norm"} <= set(lines[0])


def test_stage2_refuses_a_model_stage1_did_not_write(tmp_path, photo_folder):
    bare = TADMPipeline.from_preset("tiny", scale=16, pretrained=False).save_pretrained(tmp_path / "bare")
    with pytest.raises(TrainingSetupError, match="stage1"):
        train(small_run("stage2", tmp_path / "run", photo_folder, init=bare))
    with pytest.raises(TrainingSetupError, match="--init"):
        train(small_run("stage2", tmp_path / "run", photo_folder))


def test_resume_continues_from_the_same_step_and_optimiser_state(tmp_path, photo_folder):
    # halve_every=1 makes every step's rate differ: a schedule that was not restored would show.
    options = dict(preset="tiny", iterations=4, checkpoint_every=2, halve_every=1, lr=2e-3)
    straight = train(small_run("stage1", tmp_path / "straight", photo_folder, **options))

    interrupted = tmp_path / "interrupted"
    train(small_run("stage1", interrupted, photo_folder, **{**options, "iterations": 2}))
    checkpoint = latest_checkpoint(interrupted)
    assert checkpoint is not None and checkpoint.name == "step-00000002"
    saved_optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)["optimizer"]
    assert all(int(s["step"]) == 2 for s in saved_optimizer["state"].values())  # Adam's moments after 2 steps
    # the checkpoint keeps the loop time spent reaching it; pretend the first run took 1000 s
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["loop_seconds"] > 0
    (checkpoint / "state.json").write_text(json.dumps({**state, "loop_seconds": 1000.0}))
    # a different --lr on resume does not change the restored schedule, and training.json says which rate ran
    resumed = train(small_run("stage1", interrupted, photo_folder, resume=True, **{**options, "lr": 1e-4}))
    entry = json.loads((resumed / "training.json").read_text())["stages"][-1]
    assert entry["lr"] == 2e-3
    # the stage's wall time counts the earlier run's loop too, not only the resumed run's
    assert entry["resumed_at_step"] == 2 and 1000 < entry["loop_seconds"] < 1100

    steps = [json.loads(x)["step"] for x in (interrupted / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the resumed run went on at step 3
    a = load_file(str(straight / "dfrm" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(resumed / "dfrm" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    # and the run really moved the weights, so the equality above is not vacuous
    fresh = TADMPipeline.from_preset("tiny", scale=16, pretrained=False).dfrm.state_dict()
    assert any(not torch.equal(fresh[k], a[k]) for k in a)


def test_cached_latents_are_written_once_and_reused(tmp_path, photo_folder):
    cache = tmp_path / "cache"
    train(small_run("stage1", tmp_path / "a", photo_folder, preset="tiny", iterations=2, cache_latents=cache))
    files = sorted(cache.rglob("*.safetensors"))
    assert files  # one file per distinct crop: a 64 px photo at crop 64 has two (plain and mirrored)
    assert len(files) <= 2
    stamps = {f: f.stat().st_mtime_ns for f in files}
    latent = load_file(str(files[0]))["z"]
    assert latent.shape == (4, 8, 8)
    train(small_run("stage1", tmp_path / "b", photo_folder, preset="tiny", iterations=2, cache_latents=cache))
    assert {f: f.stat().st_mtime_ns for f in sorted(cache.rglob("*.safetensors"))} == stamps  # read, not rewritten


def test_missing_perceptual_weights_stop_the_trainer_too(tmp_path, photo_folder, chain):
    from model.evaluation.perceptual import unavailable_reason

    if unavailable_reason("lpips") is None:
        pytest.skip("LPIPS and its weights are installed here")
    with pytest.raises(TrainingSetupError, match="lpips"):
        train(small_run("stage2", tmp_path / "run", photo_folder, init=chain["stage1"], perceptual=("lpips",)))
    # the substitute the chain used is on record in the model directory
    assert json.loads((chain["stage2"] / "training.json").read_text())["stages"][-1]["perceptual"] == []


def test_max_seconds_ends_the_stage_with_the_steps_done(tmp_path, photo_folder):
    # a budget of 0 s is spent after the first step: the model is written from it and says so
    model_dir = train(small_run("stage1", tmp_path / "run", photo_folder, preset="tiny", max_seconds=0.0))
    entry = json.loads((model_dir / "training.json").read_text())["stages"][-1]
    assert (entry["iterations"], entry["planned_iterations"], entry["max_seconds"]) == (1, 6, 0.0)
    assert json.loads((model_dir / "training.json").read_text())["cumulative_steps"] == {"stage1": 1}
    TADMPipeline.from_pretrained(model_dir)  # a whole model directory
    # a budget that is not reached changes nothing in the record
    roomy = train(small_run("stage1", tmp_path / "roomy", photo_folder, preset="tiny", iterations=2,
                            max_seconds=3600.0))
    entry = json.loads((roomy / "training.json").read_text())["stages"][-1]
    assert entry["iterations"] == 2 and "planned_iterations" not in entry


def test_a_stage_started_from_a_model_with_the_consistency_step_writes_one_without_it(chain, photo_folder, tmp_path):
    """The step and the plain rule fit the reconstructions they were chosen on; a stage changes them, so its model
    goes without both."""
    from model.consistency import CONSISTENCY_DIR, ThumbnailConsistency
    from model.plain_rule import RULE_NAME, PlainRule

    start = TADMPipeline.from_pretrained(chain["stage3"])
    start.consistency = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    start.plain_rule = PlainRule(40.0)
    start.save_pretrained(tmp_path / "with-step")
    loaded = TADMPipeline.from_pretrained(tmp_path / "with-step")
    assert loaded.consistency is not None and loaded.plain_rule is not None
    model_dir = train(small_run("stage3", tmp_path / "run", photo_folder, init=tmp_path / "with-step", iterations=1,
                                check_previous_stage=False))
    assert not (model_dir / CONSISTENCY_DIR).exists() and not (model_dir / RULE_NAME).exists()
    trained = TADMPipeline.from_pretrained(model_dir)
    assert trained.consistency is None and trained.plain_rule is None
