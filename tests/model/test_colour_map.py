from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image

from model.colour_map import (
    DECIMALS,
    apply_colour_map,
    finish_choosing_colour_map,
    fit_colour_map,
    upscale_choosing_colour_map,
)
from model.consistency import ThumbnailConsistency
from model.evaluation.metrics import psnr, rgb_to_y
from model.thumbnail import Thumbnail, ThumbnailError, plain_thumbnail

MIX = (0.9, 0.1, 0.0, 0.1, 0.05, 1.1, -0.1, -0.2, 0.0, 0.2, 0.7, 0.05)


def psnr_y(a: Image.Image, b: Image.Image) -> float:
    return psnr(rgb_to_y(np.asarray(a)), rgb_to_y(np.asarray(b)))


def test_the_fitted_map_undoes_an_affine_colour_change_to_within_its_rounding():
    target = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(5)) * 2 - 1
    changed = apply_colour_map(MIX, target)
    values = fit_colour_map(changed, target)
    assert all(round(v, DECIMALS) == v for v in values)
    assert float((changed - target).abs().max()) > 0.1
    assert torch.allclose(apply_colour_map(values, changed), target, atol=2e-3)


def test_the_fit_gathered_in_bands_is_the_fit_over_the_whole_image(monkeypatch):
    from model import colour_map

    target = torch.rand(1, 3, 37, 23, generator=torch.Generator().manual_seed(7)) * 2 - 1
    changed = apply_colour_map(MIX, target) + 0.05 * torch.rand(1, 3, 37, 23, generator=torch.Generator())
    whole = fit_colour_map(changed, target)
    monkeypatch.setattr(colour_map, "FIT_BAND_PIXELS", 50)  # bands of 2 rows, the last one shorter
    assert fit_colour_map(changed, target) == whole


def test_a_flat_photo_gets_a_finite_map_that_gives_its_colour():
    low = torch.full((1, 3, 8, 8), 0.2)
    target = torch.full((1, 3, 8, 8), -0.3)
    values = fit_colour_map(low, target)
    assert all(math.isfinite(v) for v in values)
    assert torch.allclose(apply_colour_map(values, low), target, atol=1e-3)


def test_a_colour_map_travels_in_the_metadata_of_every_lossless_format():
    image = Image.new("RGB", (4, 3), (10, 200, 30))
    thumbnail = Thumbnail(image, 16, (64, 48), "abc", colour_map=MIX)
    for fmt in ("png", "webp"):
        read = Thumbnail.from_bytes(thumbnail.to_bytes(fmt))
        assert read.colour_map == MIX
        assert read.metadata == thumbnail.metadata and read.image.tobytes() == image.tobytes()
    without = Thumbnail(image, 16, (64, 48), "abc")
    assert "cmap" not in without.metadata  # thumbnails without a map are written as before
    assert Thumbnail.from_bytes(without.to_png()).colour_map is None
    assert thumbnail.with_colour_map(None) == without
    assert without.with_colour_map(None) is without


@pytest.mark.parametrize("cmap", [[1.0] * 11, "1,2,3", [1.0] * 11 + ["x"], [1.0] * 11 + [True],
                                  [1.0] * 11 + [float("nan")], [1.0] * 11 + [1e6]])
def test_a_thumbnail_with_a_broken_colour_map_is_refused_by_name(cmap, thumbnail_file_with):
    with pytest.raises(ThumbnailError, match="colour map"):
        Thumbnail.from_bytes(thumbnail_file_with(cmap=cmap))


def test_a_plain_thumbnail_carries_no_colour_map():
    plain = plain_thumbnail(Image.new("RGB", (64, 48), (90, 90, 90)), 16)
    with pytest.raises(ThumbnailError, match="colour map"):
        plain.with_colour_map(MIX)


def shifted_pipe(tiny_pipe, shift: float):
    """The tiny model with a consistency step whose low frequencies are off by ``shift`` (a colour error the
    map can take out) and whose gate keeps the detail."""
    pipe = copy.copy(tiny_pipe)
    pipe.consistency = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    with torch.no_grad():
        pipe.consistency.head.bias[:3] = torch.tensor([shift, -shift, shift / 2])
    return pipe


def sent_as_received(pipe, photo: Image.Image) -> tuple[Thumbnail, Thumbnail, Image.Image]:
    """The model's thumbnail of ``photo``, that thumbnail as the sender stores it and the sender's reconstruction,
    checked to be what the receiver makes of the stored file."""
    learned = pipe.downscale(photo, learned=True)
    stored, sent = upscale_choosing_colour_map(pipe, learned, photo)
    received = pipe.upscale(Thumbnail.from_bytes(stored.to_png()))
    assert np.array_equal(np.asarray(received), np.asarray(sent))
    return learned, stored, sent


def test_the_sender_stores_a_map_that_the_receiver_applies_to_the_same_pixels(tiny_pipe, kodak_image):
    pipe = shifted_pipe(tiny_pipe, 0.15)
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 200, 136))
    learned, stored, sent = sent_as_received(pipe, photo)
    assert stored.colour_map is not None
    # and the map was worth storing: the step's colour error is gone
    assert psnr_y(photo, sent) > psnr_y(photo, pipe.upscale(learned)) + 3
    assert stored.image is learned.image  # the pixels are the model's; only the metadata changed


def test_a_map_that_does_not_help_is_not_stored(tiny_pipe, kodak_image):
    pipe = shifted_pipe(tiny_pipe, 0.0)
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 120, 88))
    learned = pipe.downscale(photo, learned=True)
    stored, sent = upscale_choosing_colour_map(pipe, learned, photo)
    served = pipe.upscale(learned)
    if stored.colour_map is None:
        assert np.array_equal(np.asarray(sent), np.asarray(served))
    else:  # a map is kept only for a gain
        assert psnr_y(photo, sent) > psnr_y(photo, served)


def test_a_model_without_a_step_and_a_plain_thumbnail_get_no_map(tiny_pipe, kodak_image):
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 120, 88))
    learned = tiny_pipe.downscale(photo, learned=True)
    stored, sent = upscale_choosing_colour_map(tiny_pipe, learned, photo)
    assert stored is learned and np.array_equal(np.asarray(sent), np.asarray(tiny_pipe.upscale(learned)))
    plain = plain_thumbnail(photo, 16)
    stored, sent = upscale_choosing_colour_map(shifted_pipe(tiny_pipe, 0.1), plain, photo)
    assert stored is plain and sent.size == photo.size


def test_a_receiver_without_the_step_ignores_the_map(tiny_pipe, kodak_image):
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 120, 88))
    learned = tiny_pipe.downscale(photo, learned=True)
    assert np.array_equal(np.asarray(tiny_pipe.upscale(learned.with_colour_map(MIX))),
                          np.asarray(tiny_pipe.upscale(learned)))


def test_the_original_must_be_the_thumbnails_size(tiny_pipe, kodak_image):
    pipe = shifted_pipe(tiny_pipe, 0.1)
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 120, 88))
    learned = pipe.downscale(photo, learned=True)
    (result,) = pipe.denoise([pipe.thumbnail_to_latent(learned)])
    with pytest.raises(ValueError, match="120x88"):
        finish_choosing_colour_map(pipe, learned, result.latent, photo.crop((0, 0, 100, 88)))


def test_the_evaluation_scores_the_thumbnail_as_stored_with_its_map_and_its_bytes(tiny_pipe, kodak_image):
    from model.evaluation.evaluate import COLOUR_MAPPED, bounded_reconstruction, model_reconstruction

    pipe = shifted_pipe(tiny_pipe, 0.15)
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 200, 136))
    without = model_reconstruction(pipe, photo)
    mapped = model_reconstruction(pipe, photo, colour_map=True)
    assert mapped.detail.startswith(without.detail + COLOUR_MAPPED)  # and a colour lattice where one pays
    assert mapped.stored_bytes > without.stored_bytes  # the map's numbers are paid for
    assert psnr_y(photo, mapped.image) > psnr_y(photo, without.image) + 3
    assert np.array_equal(np.asarray(mapped.thumbnail), np.asarray(without.thumbnail))  # the model's pixels
    # held within a bound that pulls blotches in, the new thumbnail gets a map fitted to it, named once
    bounded = bounded_reconstruction(pipe, photo, mapped, 1.0, colour_map=True)
    assert bounded.detail.count(COLOUR_MAPPED) == 1 and "pulled in to 1 levels" + COLOUR_MAPPED in bounded.detail
    assert not np.array_equal(np.asarray(bounded.thumbnail), np.asarray(mapped.thumbnail))
