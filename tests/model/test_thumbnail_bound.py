"""bound_deviation: a thumbnail pulled within the bound under its blotches and left bit for bit elsewhere."""

import numpy as np
import pytest

from model.evaluation.metrics import block_deviations, worst_local_deviation
from model.thumbnail_bound import bound_deviation


def _blotched(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth reference thumbnail and a learned one that follows it but for two colour blotches."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 200, 40)[None, :, None] + np.linspace(0, 30, 32)[:, None, None]
    reference = np.clip(ramp + np.zeros((1, 1, 3)), 0, 255).astype(np.uint8)
    learned = np.clip(reference.astype(int) + rng.integers(-6, 7, size=reference.shape), 0, 255)
    learned[4:10, 5:11, 1] = np.clip(learned[4:10, 5:11, 1] + 160, 0, 255)  # green, far beyond the bound
    learned[20:23, 26:30, 0] += 150  # magenta-ish, a smaller one
    learned[20:23, 26:30, 2] = np.clip(learned[20:23, 26:30, 2] - 60, 0, 255)
    return reference, learned.astype(np.uint8)


@pytest.mark.parametrize("bound", [48.0, 20.0, 5.0])
def test_every_block_ends_within_the_bound(bound):
    reference, learned = _blotched()
    assert worst_local_deviation(reference, learned) > 50
    bounded = bound_deviation(learned, reference, bound)
    assert bounded.dtype == np.uint8 and bounded.shape == learned.shape
    assert worst_local_deviation(reference, bounded) <= bound


def test_pixels_outside_offending_blocks_are_kept_bit_for_bit():
    reference, learned = _blotched()
    bounded = bound_deviation(learned, reference, 48.0)
    blocks = block_deviations(reference, learned)
    touched = np.zeros(learned.shape[:2], bool)
    for y, x in zip(*np.nonzero(blocks > 48.0), strict=True):
        touched[y:y + 4, x:x + 4] = True
    assert touched.any() and not touched.all()
    assert np.array_equal(bounded[~touched], learned[~touched])
    assert not np.array_equal(bounded[touched], learned[touched])


def test_a_pixel_only_moves_towards_the_reference():
    reference, learned = _blotched(seed=1)
    bounded = bound_deviation(learned, reference, 10.0).astype(int)
    ref, lrn = reference.astype(int), learned.astype(int)
    assert (np.abs(bounded - ref) <= np.abs(lrn - ref)).all()
    assert (np.minimum(ref, lrn) <= bounded).all() and (bounded <= np.maximum(ref, lrn)).all()
    # so no block grows: blocks that were within stay within what they were
    assert (block_deviations(reference, bounded.astype(np.uint8)) <= block_deviations(reference, learned) + 1e-9).all()


def test_a_thumbnail_within_the_bound_is_returned_unchanged():
    reference, learned = _blotched()
    within = worst_local_deviation(reference, learned)
    assert bound_deviation(learned, reference, within) is learned


def test_a_thumbnail_smaller_than_the_block_is_bounded_as_a_whole():
    reference = np.full((2, 3, 3), 100, np.uint8)
    learned = np.full((2, 3, 3), 250, np.uint8)
    bounded = bound_deviation(learned, reference, 48.0)
    assert worst_local_deviation(reference, bounded) <= 48.0
    assert np.abs(bounded.astype(int) - 100).mean() == pytest.approx(47.5, abs=0.5)


def test_a_bound_under_half_a_level_gives_the_reference_under_every_offending_block():
    reference, learned = _blotched()
    bounded = bound_deviation(learned, reference, 0.0)
    assert np.array_equal(bounded, reference)
    with pytest.raises(ValueError, match="at least 0 levels"):
        bound_deviation(learned, reference, -1.0)


def test_a_thumbnail_object_is_bounded_against_its_photos_bicubic_thumbnail(kodak_image):
    from PIL import Image

    from model.thumbnail import Thumbnail, plain_thumbnail_image
    from model.thumbnail_bound import bounded_thumbnail

    with Image.open(kodak_image) as opened:
        original = opened.convert("RGB").crop((0, 0, 320, 256))
    reference = np.asarray(plain_thumbnail_image(original, 16))
    blotched = reference.copy()
    blotched[3:9, 4:10, 1] = 255  # a green blotch
    learned = Thumbnail(Image.fromarray(blotched), 16, original.size, "m0")
    bounded = bounded_thumbnail(learned, original, 30.0)
    assert worst_local_deviation(reference, blotched) > 30.0
    assert worst_local_deviation(reference, np.asarray(bounded.image)) <= 30.0
    assert (bounded.scale, bounded.original_size, bounded.model_id, bounded.method) == (16, original.size, "m0", "tadm")
    assert bounded_thumbnail(bounded, original, 30.0) is bounded  # within the bound: the same object


def test_the_default_bound_is_the_services():
    from model.thumbnail_bound import DEFAULT_MAX_DEVIATION
    from service.config import Settings
    from service.worker.ingest import IngestPolicy

    assert Settings.model_fields["verify_thumbnail_max_deviation"].default == DEFAULT_MAX_DEVIATION
    assert IngestPolicy().max_deviation == DEFAULT_MAX_DEVIATION
