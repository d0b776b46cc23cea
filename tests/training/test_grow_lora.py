"""Raising a trained UNet LoRA rank (model.training.grow_lora): same outputs, new directions that learn, a model
directory that loads as grown, and the trainer's record."""

from __future__ import annotations

import json

import pytest
import torch

from model import lora
from model.pipeline import TADMPipeline
from model.training.grow_lora import grow_unet_lora

from .conftest import small_run


def trained_looking_pipe() -> TADMPipeline:
    """The tiny preset with every UNet adapter weight random (B is zero at init: a copy that dropped the old
    weights would go unnoticed there)."""
    pipe = TADMPipeline.from_preset("tiny", scale=16)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if lora.is_adapter_key(name):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return pipe


def unet_output(pipe: TADMPipeline) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(1, pipe.unet.config.in_channels, 16, 16, generator=generator)
    with torch.no_grad():
        return pipe.unet(sample, 50, encoder_hidden_states=pipe.empty_prompt).sample


def test_a_grown_adapter_gives_the_same_output():
    pipe = trained_looking_pipe()
    rank = pipe.config["unet_lora_rank"]
    expected = unet_output(pipe)
    without_lora = trained_looking_pipe()
    without_lora.unet.disable_adapters()
    assert (unet_output(without_lora) - expected).abs().max() > 1e-2  # the adapter matters to this output
    assert grow_unet_lora(pipe, rank * 3) == rank
    assert pipe.config["unet_lora_rank"] == rank * 3 and pipe.config["unet_lora_alpha"] == 8 * 3
    torch.testing.assert_close(unet_output(pipe), expected, rtol=0, atol=1e-5)
    assert grow_unet_lora(pipe, rank * 3) is None  # already that rank: nothing changes


def test_the_new_directions_learn():
    pipe = trained_looking_pipe()
    rank = pipe.config["unet_lora_rank"]
    grow_unet_lora(pipe, rank * 2)
    layer = dict(lora.lora_layers(pipe.unet))["conv_out"]
    a, b = layer.lora_A[lora.UNET_ADAPTER].weight, layer.lora_B[lora.UNET_ADAPTER].weight
    assert a.shape[0] == b.shape[1] == rank * 2
    assert torch.count_nonzero(b[:, rank:]) == 0 and torch.count_nonzero(a[rank:]) > 0
    unet_output_with_grad = pipe.unet(torch.randn(1, pipe.unet.config.in_channels, 16, 16), 50,
                                      encoder_hidden_states=pipe.empty_prompt).sample
    unet_output_with_grad.square().mean().backward()
    assert b.grad[:, rank:].abs().sum() > 0


def test_a_grown_model_saves_and_loads(tmp_path):
    pipe = trained_looking_pipe()
    grow_unet_lora(pipe, pipe.config["unet_lora_rank"] * 2)
    pipe.save_pretrained(tmp_path)
    loaded = TADMPipeline.from_pretrained(tmp_path)
    assert loaded.model_id == pipe.model_id
    assert json.loads((tmp_path / "tadm.json").read_text())["unet_lora_alpha"] == 16
    assert loaded.config["unet_lora_rank"] == pipe.config["unet_lora_rank"]
    torch.testing.assert_close(unet_output(loaded), unet_output(pipe), rtol=0, atol=1e-5)  # float order only


def test_the_rank_cannot_shrink():
    pipe = trained_looking_pipe()
    with pytest.raises(ValueError, match="from 4 to 2"):
        grow_unet_lora(pipe, 2)


def test_a_stage_that_raises_the_rank_records_it_and_its_checkpoints_rebuild(tmp_path, photo_folder):
    from model.training.from_checkpoint import model_from_checkpoints
    from model.training.trainer import train

    start = train(small_run("stage1", tmp_path / "start", photo_folder, preset="tiny", iterations=1))
    grown = train(small_run("stage3", tmp_path / "grown", photo_folder, init=start, iterations=2,
                            checkpoint_every=2, check_previous_stage=False, unet_lora_rank=8))
    assert TADMPipeline.from_pretrained(grown).config["unet_lora_rank"] == 8
    entry = json.loads((grown / "training.json").read_text())["stages"][-1]
    assert entry["unet_lora_rank"] == 8 and entry["unet_lora_rank_grown_from"] == 4
    # from_checkpoint raises the start model's rank to the checkpoint's: the same model as the stage wrote
    rebuilt = model_from_checkpoints("stage3", start, [tmp_path / "grown" / "checkpoints" / "step-00000002"],
                                     tmp_path / "rebuilt")
    assert rebuilt.model_id == TADMPipeline.from_pretrained(grown).model_id
