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
