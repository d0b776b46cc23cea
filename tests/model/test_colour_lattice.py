from __future__ import annotations

import base64
import copy
import json
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from model import colour_lattice
from model.colour_lattice import (
    apply_colour_lattice,
    axis_weights,
    choose_colour_lattice,
    fit_colour_lattice,
    lattice_correction,
    lattice_shape,
    luma_sse,
    metadata_bytes,
)
from model.consistency import ThumbnailConsistency
from model.evaluation.metrics import psnr, rgb_to_y
from model.thumbnail import Thumbnail, ThumbnailError, plain_thumbnail
from tests.model.test_colour_map import sent_as_received


def random_lattice(rows: int, cols: int, seed: int, spread: int = 60) -> tuple[int, ...]:
    values = torch.randint(-spread, spread + 1, (12 * rows * cols,), generator=torch.Generator().manual_seed(seed))
    return (rows, cols, *(int(v) for v in values))


def test_lattices_are_about_evenly_spaced_on_both_sides():
    assert lattice_shape((64, 64), 4) == (4, 4)
    assert lattice_shape((32, 128), 6) == (2, 6)
    assert lattice_shape((128, 64), 6) == (6, 3)
    assert lattice_shape((2, 40), 6) == (2, 6)  # two along a side at least


def test_the_bilinear_weights_of_an_axis_sum_to_one_and_peak_at_their_points():
    weights = axis_weights(13, 4)
    assert torch.allclose(weights.sum(0), torch.ones(13, dtype=torch.float64))
    assert weights[0, 0] == 1 and weights[3, 12] == 1 and weights[1, 4] == 1


def test_the_fit_recovers_a_lattice_that_made_the_difference():
    low = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    made = random_lattice(3, 4, seed=1)
    assert fit_colour_lattice(low, lattice_correction(made, low), 3, 4) == made
    # the receiver's correction is the same map applied to the low frequencies
    assert torch.allclose(apply_colour_lattice(made, low), low + lattice_correction(made, low).float())


def test_a_smooth_colour_drift_gets_a_lattice_and_noise_gets_none():
    scale = 16
    low = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    # a drift over the photo: the contrast of red grows from left to right, blue is lifted at the bottom
    drift = (2, 2, *([0] * 48))
    drift = list(drift)
    for point, (red_gain, blue_lift) in enumerate([(0, 0), (120, 0), (0, 90), (120, 90)]):
        drift[2 + 12 * point + 0] = red_gain  # D[r, r]
        drift[2 + 12 * point + 11] = blue_lift  # c[b]
    upsampled = torch.nn.functional.interpolate(lattice_correction(tuple(drift), low).float(),
                                                scale_factor=scale, mode="bilinear")
    chosen = choose_colour_lattice(low, upsampled, scale, file_bytes=2000)
    assert chosen is not None
    residual = torch.nn.functional.avg_pool2d(upsampled, scale).double()
    assert float((residual - lattice_correction(chosen, low)).abs().max()) < 0.3 * float(residual.abs().max())
    noise = (torch.rand(1, 3, 12 * scale, 16 * scale, generator=torch.Generator().manual_seed(5)) - 0.5) * 0.2
    assert choose_colour_lattice(low, noise, scale, file_bytes=2000) is None  # no smooth error for a lattice to take out


def test_below_bicubic_the_lattice_that_gains_most_is_kept_if_it_pays_for_itself():
    scale = 16
    low = torch.rand(1, 3, 30, 40, generator=torch.Generator().manual_seed(4)) * 2 - 1
    # a broad drift of red contrast and a finer wave of blue, which only the larger lattices follow
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 40), indexing="ij")
    residual = torch.zeros(1, 3, 30, 40)
    residual[0, 0] = 0.2 * xx * low[0, 0] + 0.1 * yy
    residual[0, 2] = 0.03 * torch.sin(xx * 3 * torch.pi) * torch.sin(yy * 2 * torch.pi)
    difference = torch.nn.functional.interpolate(residual, scale_factor=scale, mode="nearest")
    above = choose_colour_lattice(low, difference, scale, file_bytes=3000)
    below = choose_colour_lattice(low, difference, scale, file_bytes=3000, below_bicubic=True)
    assert above is not None and below is not None
    assert below[0] * below[1] > above[0] * above[1]

    def left(lattice: tuple[int, ...]) -> float:
        return float(((residual.double() - lattice_correction(lattice, low)) ** 2).sum())

    assert left(below) < left(above)
    noise = (torch.rand(1, 3, 30 * scale, 40 * scale, generator=torch.Generator().manual_seed(5)) - 0.5) * 0.2
    assert choose_colour_lattice(low, noise, scale, file_bytes=3000, below_bicubic=True) is None  # still must pay


def test_the_luma_error_summed_in_bands_is_the_whole_image_s(monkeypatch):
    x = torch.randn(1, 3, 37, 23, generator=torch.Generator().manual_seed(6))
    luma = (x.double() * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).reshape(1, 3, 1, 1)).sum(1)
    monkeypatch.setattr(colour_lattice, "BAND_PIXELS", 5 * 23)  # bands of 5 rows, the last one of 2
    assert luma_sse(x) == pytest.approx(float((luma ** 2).sum()), rel=1e-12)


def test_the_bytes_counted_are_those_the_lattice_adds_to_the_metadata():
    lattice = random_lattice(2, 2, seed=2)
    thumbnail = Thumbnail(Image.new("RGB", (4, 3)), 16, (64, 48), "abc", colour_lattice=lattice)
    without = Thumbnail(Image.new("RGB", (4, 3)), 16, (64, 48), "abc")
    dumped = lambda t: len(json.dumps(t.metadata, separators=(",", ":")))  # noqa: E731
    assert dumped(thumbnail) - dumped(without) == metadata_bytes(lattice)
    assert metadata_bytes(lattice) < len(json.dumps(list(lattice)))  # compressed


def test_a_colour_lattice_travels_in_the_metadata_of_every_lossless_format():
    image = Image.new("RGB", (4, 3), (10, 200, 30))
    lattice = random_lattice(2, 3, seed=6)
    thumbnail = Thumbnail(image, 16, (64, 48), "abc", colour_lattice=lattice)
    for fmt in ("png", "webp"):
        read = Thumbnail.from_bytes(thumbnail.to_bytes(fmt))
        assert read.colour_lattice == lattice and read.colour_map is None
        assert read.metadata == thumbnail.metadata
    assert "clat" not in Thumbnail(image, 16, (64, 48), "abc").metadata  # thumbnails without one as before
    assert thumbnail.with_colour_map(None).colour_lattice is None


def packed(values: list[int], size: int = 2) -> str:
    raw = b"".join(v.to_bytes(size, "little", signed=True) for v in values)
    return base64.b64encode(zlib.compress(raw)).decode()


@pytest.mark.parametrize("clat", [
    [2, 2, packed([0] * 47)],  # one coefficient short
    [1, 2, packed([0] * 24)],  # a single row
    [17, 2, packed([0] * 408)],  # beyond the largest lattice
    [2, 2, packed([0] * 47 + [5000])],  # a coefficient beyond ±16
    [2, 2, packed([0] * 95, size=1)],  # not whole 16-bit numbers
    [2, 2, "not base64!"],
    [2, 2, base64.b64encode(b"not zlib").decode()],
    [2, 2, packed([0] * 48)[:-8]],  # cut short
    [True, 2, packed([0] * 24)],
    [2, 2] + [0] * 48,  # the integers written out
    "2,2",
])
def test_a_thumbnail_with_a_broken_colour_lattice_is_refused_by_name(clat, thumbnail_file_with):
    with pytest.raises(ThumbnailError, match="colour lattice"):
        Thumbnail.from_bytes(thumbnail_file_with(clat=clat))


def test_a_lattice_that_inflates_beyond_the_largest_is_refused_without_inflating_it_all(thumbnail_file_with):
    bomb = base64.b64encode(zlib.compress(bytes(50_000_000))).decode()
    with pytest.raises(ThumbnailError, match="colour lattice"):
        Thumbnail.from_bytes(thumbnail_file_with(clat=[2, 2, bomb]))


def test_a_plain_thumbnail_carries_no_colour_lattice():
    plain = plain_thumbnail(Image.new("RGB", (64, 48), (90, 90, 90)), 16)
    with pytest.raises(ThumbnailError, match="colour lattice"):
        plain.with_colour_map(None, random_lattice(2, 2, seed=1))


class DriftingStep(ThumbnailConsistency):
    """A consistency step whose estimate of the low frequencies is the thumbnail with a colour error that drifts
    across the photo (more red to the right, blue that changes sign between the corners): what one colour map for
    the whole photo cannot take out."""

    def forward(self, thumbnail, own, context=None):
        _, gate = super().forward(thumbnail, own)
        r = thumbnail - own
        h, w = own.shape[-2:]
        across = torch.linspace(-1, 1, w).reshape(1, 1, 1, w)
        down_ = torch.linspace(-1, 1, h).reshape(1, 1, h, 1)
        drift = torch.cat((0.25 * across.expand(1, 1, h, w), torch.zeros(1, 1, h, w),
                           -0.25 * (down_ * across).expand(1, 1, h, w)), 1)
        return r + drift, gate


def test_the_sender_stores_a_lattice_that_the_receiver_applies_to_the_same_pixels(tiny_pipe, kodak_image):
    pipe = copy.copy(tiny_pipe)
    pipe.consistency = DriftingStep(scale=16, channels=8, num_layers=3)
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 320, 224))
    _, stored, sent = sent_as_received(pipe, photo)  # the receiver makes the sender's pixels of the stored file
    assert stored.colour_lattice is not None
    map_only = pipe.upscale(stored.with_colour_map(stored.colour_map))

    def psnr_y(image):
        return psnr(rgb_to_y(np.asarray(photo)), rgb_to_y(np.asarray(image)))

    assert psnr_y(sent) > psnr_y(map_only) + 1  # the drift one map leaves, the lattice takes out


def test_an_evaluation_names_the_lattice_and_a_bounded_result_names_it_once():
    from model.evaluation.evaluate import mapped, without_colour_notes

    image = Image.new("RGB", (4, 3))
    both = Thumbnail(image, 16, (64, 48), "abc", colour_map=(1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0),
                     colour_lattice=random_lattice(2, 3, seed=1))
    assert mapped(both) == ", with a colour map, with a colour lattice of 2x3"
    assert mapped(both.with_colour_map(None, both.colour_lattice)) == ", with a colour lattice of 2x3"
    assert mapped(both.with_colour_map(None)) == ""
    assert without_colour_notes("model abc, latent tiles 128/96" + mapped(both)) == "model abc, latent tiles 128/96"
