"""A model's layout (model.layout) as the pipeline applies it: padding, latent tiles, VAE tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from model import TADMPipeline
from model.layout import LAYOUTS, get_layout
from model.pipeline import pil_to_tensor, tensor_to_uint8


def with_layout(pipe: TADMPipeline, name: str) -> TADMPipeline:
    return TADMPipeline(vae=pipe.vae, unet=pipe.unet, dfrm=pipe.dfrm, tpm=pipe.tpm, refiner=pipe.refiner,
                        empty_prompt=pipe.empty_prompt, config={**pipe.config, "layout": name})


@pytest.fixture(scope="module")
def official_pipe(tiny_pipe):
    return with_layout(tiny_pipe, "official")


@pytest.mark.parametrize("size, official, project", [
    ((70, 100), (64, 64), (16, 16)),
    ((20, 100), (16, 64), (16, 16)),  # 44 px of reflection do not fit in 20: the scale's multiple instead
    ((32, 33), (16, 64), (16, 16)),
])
def test_pad_multiples(size, official, project):
    assert LAYOUTS["official"].pad_multiples(*size, 16) == official
    assert LAYOUTS["project"].pad_multiples(*size, 16) == project


def test_the_official_layout_pads_to_64_and_keeps_the_thumbnail_size(official_pipe, tiny_pipe, generator):
    image = Image.fromarray((torch.rand(70, 100, 3, generator=generator) * 255).to(torch.uint8).numpy())
    thumb = official_pipe.downscale(image)
    assert thumb.image.size == (112 // 16, 80 // 16) and thumb.original_size == (100, 70)  # the container's size
    # Its pixels are the DFRM's on the image reflected to 128x128, as their script pads it.
    x = pil_to_tensor(image)
    padded = F.pad(x, (0, 28, 0, 58), mode="reflect")
    with torch.no_grad():
        y = official_pipe.dfrm.downscale(padded, official_pipe.encode_latent(padded), noise=False)
    assert np.array_equal(np.asarray(thumb.image), tensor_to_uint8(y[..., :5, :7]))
    assert not np.array_equal(np.asarray(thumb.image), np.asarray(tiny_pipe.downscale(image).image))
    # The upscaler reflects the thumbnail back to the padded size: the latent is 128/8 px a side.
    assert official_pipe.thumbnail_to_latent(thumb).shape[-2:] == (16, 16)
    assert tiny_pipe.thumbnail_to_latent(tiny_pipe.downscale(image)).shape[-2:] == (10, 14)
    assert official_pipe.upscale(thumb).size == (100, 70)


def test_the_layout_is_part_of_the_model_id(official_pipe, tiny_pipe):
    assert official_pipe.model_id != tiny_pipe.model_id
    assert "layout" in tiny_pipe.config and tiny_pipe.layout.name == "project"


def test_denoise_places_tiles_as_the_layout_says(official_pipe, tiny_pipe, generator):
    z = torch.randn(1, 4, 64, 144, generator=generator) * 0.5
    (official,) = official_pipe.denoise([z])
    (project,) = tiny_pipe.denoise([z])
    assert len(official.tiles) == 1 and len(project.tiles) == 2  # their area rule: 64 * 144 = 96 * 96


def test_official_vae_decodes_in_one_pass_up_to_their_threshold(official_pipe, tiny_pipe, generator):
    z = torch.randn(1, 4, 24, 40, generator=generator)  # 192x320 px
    seen: list[tuple[int, int]] = []
    hook = tiny_pipe.vae.decoder.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    official_pipe.vae_max_pixels = tiny_pipe.vae_max_pixels = 64 * 64  # their thresholds, not the budget, decide
    try:
        official_pipe.latent_to_image(z, (320, 192))
        assert seen == [(24, 40)]
        seen.clear()
        tiny_pipe.latent_to_image(z, (320, 192))
        assert not seen  # the project's layout: above the budget, in bands
        # Above their threshold (a latent side over 1046) the bands take over where their tiled VAE would.
        assert not official_pipe._vae_one_pass((8376, 8), 1046, latent_side=1047)
        assert official_pipe._vae_one_pass((8368, 8), 1046, latent_side=1046)
        assert not official_pipe._vae_one_pass((8, 1089), 1088) and official_pipe._vae_one_pass((8, 1088), 1088)
    finally:
        hook.remove()
        official_pipe.vae_max_pixels = tiny_pipe.vae_max_pixels = None


def test_official_encoder_thresholds():
    layout = get_layout("official")
    assert (layout.vae_encoder_untiled_max, layout.vae_decoder_untiled_max, layout.pad_multiple) == (1088, 1046, 64)
    with pytest.raises(ValueError, match="`layout` must be one of \\['official', 'project'\\]"):
        get_layout("mine")
