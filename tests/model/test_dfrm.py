from __future__ import annotations

import pytest
import torch
from torch import nn

from model.dfrm import DFRM, InvBlockExp


def randomise(module: nn.Module, generator: torch.Generator, std: float = 0.05) -> None:
    """Give every parameter non-trivial values (zero-initialised convs would make the INN an identity)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * std)


def tiny_dfrm(scale: int) -> DFRM:
    return DFRM(scale=scale, pixel_channels=4, hidden_channels=16, num_res_blocks=1, num_inv_blocks=3, inv_growth=8)


def test_coupling_block_starts_as_identity(generator):
    block = InvBlockExp()
    x = torch.randn(2, 3, 8, 8, generator=generator)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("scale", [16, 32])
def test_inn_inverse_is_exact(scale, generator):
    dfrm = tiny_dfrm(scale).eval()
    randomise(dfrm.inv_module, generator, std=0.03)
    z_lr = torch.randn(2, 3, 24, 40, generator=generator)
    image = dfrm.to_image(z_lr)
    assert (image - z_lr).abs().max() > 0.05, "randomised INN should not be the identity"
    assert (dfrm.from_image(image) - z_lr).abs().max() < 1e-5


@pytest.mark.parametrize("scale, lr_size", [(16, (44, 63)), (32, (22, 32))])
def test_shapes_for_a_size_that_needs_padding(scale, lr_size, generator):
    # 1000x700 pads to 1008x704 at 16x and 1024x704 at 32x.
    dfrm = tiny_dfrm(scale).eval()
    h, w = lr_size[0] * scale, lr_size[1] * scale
    x = torch.rand(1, 3, h, w, generator=generator) * 2 - 1
    z = torch.randn(1, 4, h // 8, w // 8, generator=generator)
    out = dfrm(x, z)
    assert out["y"].shape == (1, 3, *lr_size)
    assert out["z_lr"].shape == (1, 3, *lr_size)
    assert out["z_hat"].shape == out["z_direct"].shape == (1, 4, h // 8, w // 8)


def test_quantisation_rounds_at_inference_and_adds_noise_in_training(generator):
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 16, 16, generator=generator) * 2.4 - 1.2  # some values outside [-1, 1]
    rounded = DFRM.quantize(lr, noise=False)
    levels = (rounded + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4), "inference output must sit on the 256 levels"
    assert rounded.min() >= -1 and rounded.max() <= 1
    noisy = DFRM.quantize(lr, noise=True)
    noisy_levels = (noisy + 1) * 127.5
    inside = (lr > -0.99) & (lr < 0.99)
    assert (noisy_levels - (lr + 1) * 127.5)[inside].abs().max() <= 0.5 + 1e-4
    assert (noisy_levels - noisy_levels.round()).abs().max() > 0.01, "training output must not be rounded"
    assert noisy.min() >= -1 and noisy.max() <= 1


def test_downscale_noise_follows_training_mode(generator):
    dfrm = tiny_dfrm(16)
    x = torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1
    z = torch.randn(1, 4, 4, 4, generator=generator)
    dfrm.eval()
    assert torch.equal(dfrm.downscale(x, z), dfrm.downscale(x, z))
    dfrm.train()
    assert not torch.equal(dfrm.downscale(x, z), dfrm.downscale(x, z))


def test_latent_scale_makes_imported_modules_see_unscaled_latents(generator):
    native = tiny_dfrm(16).eval()
    imported = DFRM(**{**native.config, "latent_scale": 1 / 0.18215}).eval()
    imported.load_state_dict(native.state_dict())
    x = torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1
    z_unscaled = torch.randn(1, 4, 4, 4, generator=generator)
    z_lr = native.encode_features(x, z_unscaled)
    assert torch.allclose(imported.encode_features(x, z_unscaled * 0.18215), z_lr, atol=1e-5)
    assert torch.allclose(imported.decode_features(z_lr), native.decode_features(z_lr) * 0.18215, atol=1e-6)


def test_rejects_unsupported_scale():
    with pytest.raises(ValueError, match="`scale` must be one of"):
        DFRM(scale=8)
