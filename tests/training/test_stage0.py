"""Stage 0 (the nano backbone from scratch), with the tiny preset on a real photograph: a few steps lower the
autoencoder and denoiser losses, only the backbone's own weights change, the written model loads, and stage 1
starts from it; from the command line it builds the nano architecture without shipped weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model import lora
from model.pipeline import TADMPipeline
from model.training.stage0 import DENOISE_MAX_T, autoencoder_psnr_y, noisy_latents
from model.training.trainer import train
from service.cli import main

from .conftest import fixed_batch_loss, small_run


@pytest.fixture(scope="module")
def stage0_model(tmp_path_factory, photo_folder) -> Path:
    root = tmp_path_factory.mktemp("stage0")
    return train(small_run("stage0", root / "s0", photo_folder, preset="tiny", random_init=True, iterations=12,
                           lr=2e-3))


def test_a_few_steps_lower_the_loss_and_write_a_loadable_model(stage0_model, photo_folder):
    start = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    trained = TADMPipeline.from_pretrained(stage0_model)
    before = fixed_batch_loss(start, "stage0", photo_folder)
    after = fixed_batch_loss(trained, "stage0", photo_folder)
    assert after < before, f"stage0: loss {before:.5f} -> {after:.5f}"
    photo = next(photo_folder.iterdir())
    psnr_before = autoencoder_psnr_y(start, [photo])[str(photo)]
    psnr_after = autoencoder_psnr_y(trained, [photo])[str(photo)]
    assert psnr_after > psnr_before, f"autoencoder PSNR-Y {psnr_before:.2f} -> {psnr_after:.2f} dB"
    history = json.loads((stage0_model / "training.json").read_text())["stages"]
    assert [h["stage"] for h in history] == ["stage0"]
    assert history[-1]["model_id"] == trained.model_id


def test_only_the_backbone_weights_change(stage0_model):
    start = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    trained = TADMPipeline.from_pretrained(stage0_model)
    for name in ("vae", "unet"):
        before = lora.base_state_dict(getattr(start, name))
        after = lora.base_state_dict(getattr(trained, name))
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{name} did not train"
        assert all(torch.equal(v, lora.adapter_state_dict(getattr(trained, name))[k])
                   for k, v in lora.adapter_state_dict(getattr(start, name)).items()), f"{name} adapters moved"
    for name in ("dfrm", "tpm", "refiner"):
        before, after = getattr(start, name).state_dict(), getattr(trained, name).state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), f"{name} changed in stage 0"


def test_stage1_starts_from_the_stage0_model(tmp_path, stage0_model, photo_folder):
    model_dir = train(small_run("stage1", tmp_path / "s1", photo_folder, init=stage0_model, iterations=1))
    history = json.loads((model_dir / "training.json").read_text())["stages"]
    assert [h["stage"] for h in history] == ["stage0", "stage1"]


def test_noise_follows_the_sd_schedule_below_the_cap():
    z0 = torch.zeros(64, 4, 2, 2)
    z_t, t, noise = noisy_latents({"beta_schedule": "scaled_linear"}, z0, torch.Generator().manual_seed(0))
    assert int(t.max()) < DENOISE_MAX_T and int(t.min()) >= 0
    # with z0 = 0, z_t is exactly sqrt(1 - ᾱ_t)·ε, and ᾱ_t falls with t
    ratio = (z_t / noise).flatten(1)[:, 0]
    order = torch.argsort(t)
    assert torch.all(ratio[order].diff() >= -1e-6)


def test_the_command_line_builds_nano_from_scratch(tmp_path, photo_folder, capsys):
    out = tmp_path / "run"
    # 0 iterations: the start model is written as is; what is checked is that nano needs no shipped weights here.
    code = main(["train", "stage0", "--preset", "nano", "--data", str(photo_folder), "-o", str(out),
                 "--iterations", "0", "--num-workers", "0", "--validate-every", "0"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "model" / "tadm.json").read_text())["preset"] == "nano"
    assert "stage0 done" in capsys.readouterr().out
