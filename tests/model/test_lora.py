from __future__ import annotations

import re

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from model import backbones, lora


def tiny_backbone() -> tuple[AutoencoderKL, UNet2DConditionModel]:
    torch.manual_seed(0)
    return backbones.random_backbone(backbones.TINY)


def wrapped(module) -> set[str]:
    return {name for name, _ in lora.lora_layers(module)}


def test_unet_adapters_sit_exactly_on_the_spec_targets():
    _, unet = tiny_backbone()
    expected = {
        name for name, m in unet.named_modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
        and any(name == t or name.endswith("." + t) for t in lora.UNET_LORA_TARGETS)
    }
    lora.attach_unet_lora(unet, rank=4)
    assert wrapped(unet) == expected
    assert "conv_in" not in expected, "conv_in is trained in full, not through LoRA"
    # every target kind the supplement names is present in a real UNet's layout
    for target in lora.UNET_LORA_TARGETS:
        assert any(name.endswith(target) for name in expected), target


def test_vae_adapters_only_on_the_decoder():
    vae, _ = tiny_backbone()
    expected = {
        name for name, m in vae.named_modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and re.fullmatch(lora.VAE_LORA_TARGETS, name)
    }
    lora.attach_vae_lora(vae, rank=2)
    names = wrapped(vae)
    assert names == expected and names
    assert all(n.startswith("decoder.") for n in names)


def test_gaussian_init_is_a_no_op_and_a_nonzero_adapter_changes_the_output():
    vae, unet = tiny_backbone()
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    context = torch.randn(1, 77, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([50.0])
    with torch.no_grad():
        before = unet(sample, t, encoder_hidden_states=context).sample
        lora.attach_unet_lora(unet, rank=4)  # gaussian: lora_B = 0
        same = unet(sample, t, encoder_hidden_states=context).sample
        lora.unmerge_lora(unet)
        unet.delete_adapters([lora.UNET_ADAPTER])
        lora.attach_unet_lora(unet, rank=4, init=False)  # random A and B: a real update
        changed = unet(sample, t, encoder_hidden_states=context).sample
    assert torch.equal(before, same)
    assert (changed - before).abs().max() > 1e-4


def test_adapter_state_dict_round_trip_and_strict_loading():
    _, unet = tiny_backbone()
    lora.attach_unet_lora(unet, rank=4, init=False)
    state = lora.adapter_state_dict(unet, lora.UNET_FULL_TRAINED)
    assert "conv_in.weight" in state and all(".default." in k for k in state if "lora_" in k)
    _, other = tiny_backbone()
    lora.attach_unet_lora(other, rank=4)
    lora.load_adapter_state_dict(other, state, "unet")
    assert all(torch.equal(other.state_dict()[k], v) for k, v in state.items())
    missing = dict(list(state.items())[1:])
    extra = {**state, "down_blocks.0.bogus.lora_A.default.weight": torch.zeros(1)}
    for bad in (missing, extra):
        try:
            lora.load_adapter_state_dict(other, bad, "unet")
        except KeyError as exc:
            assert "missing" in str(exc)
        else:
            raise AssertionError("strict loading accepted a bad key set")


def test_merging_folds_adapters_into_base_weights():
    _, unet = tiny_backbone()
    lora.attach_unet_lora(unet, rank=4, init=False)
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    context = torch.randn(1, 77, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        unmerged = unet(sample, torch.tensor([50.0]), encoder_hidden_states=context).sample
        assert lora.merge_lora(unet) > 0
        merged = unet(sample, torch.tensor([50.0]), encoder_hidden_states=context).sample
    assert torch.allclose(merged, unmerged, atol=1e-5)
