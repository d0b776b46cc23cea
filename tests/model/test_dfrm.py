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


@pytest.mark.parametrize("scale", [16, 32])
@pytest.mark.parametrize("latent_factor, shuffle_channels", [(4, None), (4, 12), (2, 12)])
def test_a_finer_latent_keeps_the_thumbnail_size(scale, latent_factor, shuffle_channels, generator):
    # The nano backbone's VAE downsamples 4x: the latent branch then reduces it scale/4 per side and G_d
    # enlarges the thumbnail's features back to H/4.
    dfrm = DFRM(scale=scale, latent_channels=8, pixel_channels=4, hidden_channels=16, num_res_blocks=1,
                num_inv_blocks=2, inv_growth=8, latent_factor=latent_factor, shuffle_channels=shuffle_channels).eval()
    h, w = 2 * scale, 3 * scale
    x = torch.rand(1, 3, h, w, generator=generator) * 2 - 1
    z = torch.randn(1, 8, h // latent_factor, w // latent_factor, generator=generator)
    out = dfrm(x, z)
    assert out["y"].shape == (1, 3, 2, 3)
    assert out["z_hat"].shape == z.shape
    widths = [m.conv_in.out_channels for m in dfrm.final_module[1 + 1:] if hasattr(m, "conv_in")]
    assert widths[-1] == 8 and all(c == (shuffle_channels or 16 // 4) for c in widths[:-1])


def test_the_default_g_d_is_the_authors_layout():
    # Their checkpoints load by module index: 16x is [ConvBlock, Resblocks, PixelShuffle, ConvBlock(hc/4, 4)].
    dfrm = DFRM(scale=32, hidden_channels=16, num_res_blocks=1, num_inv_blocks=1)
    shapes = {k: tuple(v.shape) for k, v in dfrm.final_module.state_dict().items() if k.endswith("weight")}
    assert shapes == {"0.conv_in.weight": (16, 3, 3, 3), "1.res_block.0.weight": (16, 16, 3, 3),
                      "1.res_block.2.weight": (16, 16, 3, 3), "3.conv_in.weight": (4, 4, 3, 3),
                      "5.conv_in.weight": (4, 1, 3, 3)}


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
