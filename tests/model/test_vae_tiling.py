"""The banded VAE (model.vae_tiling) computes what one pass computes; the pipeline's one-pass budget picks it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from model import backbones, lora, vae_budget, vae_tiling
from model.pipeline import TADMPipeline, tensor_to_uint8

# Agreement with one pass: max abs difference on latents (about +-3) and decoded pixels (about +-10 with these
# random weights), float32. Observed: ~2e-6 and ~1e-5; the bound leaves a factor of 10.
TOLERANCE = 1e-4
BAND = 24 * 24  # pixels per band: a 96x160 image is cut into many bands at every resolution


def images(kind: str) -> torch.Tensor:
    """(1, 3, 96, 160) in [-1, 1]: uniform noise, or a dark smooth gradient (what diffusers' tiles get wrong)."""
    g = torch.Generator().manual_seed(1)
    if kind == "random":
        return torch.rand(1, 3, 96, 160, generator=g) * 2 - 1
    rows = torch.linspace(0, 1, 96)[:, None]
    cols = torch.linspace(0, 1, 160)[None, :]
    ramp = 0.08 * rows + 0.05 * cols + 0.01 * torch.sin(cols * 9)
    return (-0.9 + torch.stack([ramp, ramp * 0.8, ramp * 1.2]))[None]


def with_lora_b(vae: AutoencoderKL, seed: int = 0) -> AutoencoderKL:
    """A copy whose decoder LoRA contributes (peft starts LoRA-B at zero)."""
    vae = copy.deepcopy(vae)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return vae


@pytest.fixture(scope="module")
def vae(tiny_pipe) -> AutoencoderKL:
    return with_lora_b(tiny_pipe.vae)


def one_pass(vae: AutoencoderKL, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    vae.disable_tiling()
    with torch.no_grad():
        moments = vae.quant_conv(vae.encoder(x))
        return moments, vae.decode(moments[:, : moments.shape[1] // 2]).sample


def diffusers_tiled(vae: AutoencoderKL, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' tiling with 64-px tiles (8 latent px), as the pipeline used it at 512 px."""
    vae.enable_tiling()
    vae.tile_sample_min_size, vae.tile_latent_min_size = 64, 8
    try:
        with torch.no_grad():
            return vae.encode(x).latent_dist.mode(), vae.decode(z).sample
    finally:
        vae.disable_tiling()


@pytest.mark.parametrize("kind", ["random", "dark_gradient"])
def test_banded_vae_matches_one_pass_where_diffusers_tiling_does_not(vae, kind):
    x = images(kind)
    moments, decoded = one_pass(vae, x)
    z = moments[:, :4]
    banded_moments = vae_tiling.encode(vae, x, BAND)
    banded = vae_tiling.decode(vae, z, BAND)
    assert banded_moments.shape == moments.shape and banded.shape == decoded.shape == x.shape
    enc_err = (banded_moments - moments).abs().max().item()
    dec_err = (banded - decoded).abs().max().item()
    assert enc_err < TOLERANCE and dec_err < TOLERANCE
    # diffusers' tiles normalise with their own statistics: measurably off, by orders of magnitude more
    tiled_z, tiled = diffusers_tiled(vae, x, z)
    assert (tiled_z - z).abs().max().item() > max(1e-2, 100 * enc_err)
    assert (tiled - decoded).abs().max().item() > max(1e-2, 100 * dec_err)


def test_merged_lora_and_band_size_do_not_matter(vae):
    x = images("dark_gradient")
    moments, decoded = one_pass(vae, x)
    merged = copy.deepcopy(vae)
    lora.merge_lora(merged)
    for band in (1, 40 * 40, 10**6):  # 4-row bands, a few bands, one band
        assert (vae_tiling.decode(merged, moments[:, :4], band) - decoded).abs().max() < TOLERANCE * 10


@pytest.mark.parametrize("preset", ["nano", "sd21-base"])
def test_every_preset_architecture(preset):
    """nano (4x, no mid-block attention) and SD 2.1's VAE (8x, 128..512 channels, attention), random weights."""
    config = backbones.get_preset(preset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderKL(**config.vae)
        lora.attach_vae_lora(vae, 2)
    vae = with_lora_b(vae.eval())
    x = images("dark_gradient")[..., :64, :96]
    moments, decoded = one_pass(vae, x)
    latent = moments.shape[1] // 2
    assert (vae_tiling.encode(vae, x, 16 * 16) - moments).abs().max() < TOLERANCE
    assert (vae_tiling.decode(vae, moments[:, :latent], 16 * 16) - decoded).abs().max() < TOLERANCE


def test_bfloat16_bands_err_as_one_pass_does(vae):
    """In a 16-bit dtype the bands are as far from float32 as one pass in that dtype is."""
    x = images("dark_gradient")
    moments, decoded = one_pass(vae, x)
    half = copy.deepcopy(vae).to(torch.bfloat16)
    half_moments, half_decoded = one_pass(half, x.bfloat16())
    banded_moments = vae_tiling.encode(half, x.bfloat16(), BAND)
    banded = vae_tiling.decode(half, moments[:, :4].bfloat16(), BAND)
    for got, ref, own in ((banded_moments, moments, half_moments), (banded, decoded, half_decoded)):
        assert got.dtype == torch.bfloat16
        assert (got.float() - ref).abs().mean() < 1.5 * (own.float() - ref).abs().mean() + 1e-4


# -- the pipeline --------------------------------------------------------------------------------------------
def count_calls(monkeypatch) -> dict[str, int]:
    calls = {"encode": 0, "decode": 0}
    for name in calls:
        real = getattr(vae_tiling, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(vae_tiling, name, spy)
    return calls


def test_the_budget_decides_one_pass_or_bands(tiny_pipe, monkeypatch):
    calls = count_calls(monkeypatch)
    x = images("random")  # 96 x 160 = 15360 px
    z = torch.randn(1, 4, 12, 20, generator=torch.Generator().manual_seed(0))
    try:
        tiny_pipe.vae_max_pixels = 96 * 160  # at the budget: one pass, exactly diffusers' untiled call
        latent, decoded = tiny_pipe.encode_latent(x), tiny_pipe.decode_latent(z)
        assert calls == {"encode": 0, "decode": 0}
        with torch.no_grad():
            assert torch.equal(latent, tiny_pipe.vae.encode(x).latent_dist.mode() * tiny_pipe.scaling_factor)
            assert torch.equal(decoded, tiny_pipe.vae.decode(z / tiny_pipe.scaling_factor).sample)
        tiny_pipe.vae_max_pixels = 96 * 160 - 1
        tiny_pipe.vae_tile_size = 32
        assert (tiny_pipe.encode_latent(x) - latent).abs().max() < TOLERANCE
        assert (tiny_pipe.decode_latent(z) - decoded).abs().max() < TOLERANCE
        assert calls == {"encode": 1, "decode": 1}
    finally:
        tiny_pipe.vae_max_pixels, tiny_pipe.vae_tile_size = None, 512


def test_downscale_and_upscale_go_through_the_bands(tiny_pipe, monkeypatch):
    calls = count_calls(monkeypatch)
    g = torch.Generator().manual_seed(2)
    image = Image.fromarray(tensor_to_uint8(images("dark_gradient") + 0.05 * torch.rand(1, 3, 96, 160, generator=g)))
    reference = tiny_pipe.downscale(image)
    expected = np.asarray(tiny_pipe.upscale(reference), dtype=np.int16)
    assert calls == {"encode": 0, "decode": 0}
    rows: list[int] = []
    hook = tiny_pipe.vae.decoder.conv_out.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[-2]))
    try:
        tiny_pipe.vae_max_pixels, tiny_pipe.vae_tile_size = 64 * 64, 32
        thumb = tiny_pipe.downscale(image)
        out = np.asarray(tiny_pipe.upscale(thumb), dtype=np.int16)
    finally:
        hook.remove()
        tiny_pipe.vae_max_pixels, tiny_pipe.vae_tile_size = None, 512
    assert calls == {"encode": 1, "decode": 1}
    assert np.abs(np.asarray(thumb.image, np.int16) - np.asarray(reference.image, np.int16)).max() <= 1
    assert np.abs(out - expected).max() <= 1  # 8-bit rounding of values equal to ~1e-5
    assert len(rows) > 1 and max(rows) <= 32 * 32 // 160 + 2  # the full-resolution layers see one band at a time


def test_vae_max_pixels_knob_and_default(tiny_pipe, monkeypatch):
    pipe = TADMPipeline.from_preset("tiny", pretrained=False, vae_max_pixels=1234)
    assert pipe.vae_max_pixels == 1234
    per_pixel = vae_budget.one_pass_bytes_per_pixel(tiny_pipe.vae.config, torch.float32)
    assert per_pixel == vae_budget.ONE_PASS_MAPS * 8 * 4  # the tiny VAE's widest full-resolution stage: 8
    assert tiny_pipe.vae_max_pixels == int(vae_budget.CPU_ONE_PASS_BYTES / per_pixel)
    with pytest.raises(ValueError, match="positive"):
        pipe.vae_max_pixels = 0
    # CUDA: half of what is free, counting what torch's allocator holds unused
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 * 2**30)
    sd = backbones.get_preset("sd21-base").vae
    budget = vae_budget.default_vae_max_pixels(sd, torch.device("cuda"), torch.bfloat16)
    assert budget == int(0.5 * 8 * 2**30 / (vae_budget.ONE_PASS_MAPS * 256 * 2))
