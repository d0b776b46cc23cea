"""Training data: recursive folders of images, deterministic random crops, step-indexed batches."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from model.training.data import RandomCrops, StepSampler, find_images


def test_find_images_is_recursive_and_filters_by_suffix(tmp_path, photo_folder):
    with Image.open(next(photo_folder.iterdir())) as img:
        (tmp_path / "a" / "b").mkdir(parents=True)
        img.save(tmp_path / "x.png")
        img.save(tmp_path / "a" / "y.JPG")
        img.save(tmp_path / "a" / "b" / "z.webp")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in find_images([tmp_path])] == ["z.webp", "y.JPG", "x.png"]  # sorted by path: a/b/ < a/y < x
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match="broken.jpg is not a readable image"):
        find_images([tmp_path])
    (tmp_path / "a" / "broken.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="no training images"):
        (tmp_path / "empty").mkdir()
        find_images([tmp_path / "empty"])


def test_crops_are_a_function_of_seed_and_index(kodak_dir):
    data = RandomCrops([kodak_dir / "kodak__kodim01.png", kodak_dir / "kodak__kodim02.png"], 64, seed=3)
    a, b = data[5], data[5]
    assert a["pixels"].shape == (3, 64, 64) and a["pixels"].min() >= -1 and a["pixels"].max() <= 1
    assert torch.equal(a["pixels"], b["pixels"]) and a["key"] == b["key"]
    assert not torch.equal(a["pixels"], data[6]["pixels"])


def test_decoded_photos_are_kept_within_the_memory_bound_and_give_the_same_crops(kodak_dir):
    paths = [kodak_dir / "kodak__kodim01.png", kodak_dir / "kodak__kodim02.png"]
    uncached, cached = RandomCrops(paths, 64, seed=3, cache_bytes=0), RandomCrops(paths, 64, seed=3)
    one_photo = 768 * 512 * 3
    bounded = RandomCrops(paths, 64, seed=3, cache_bytes=one_photo)
    for index in range(8):
        assert torch.equal(uncached[index]["pixels"], cached[index]["pixels"])
        assert torch.equal(cached[index]["pixels"], bounded[index]["pixels"])  # a second read, from memory
        assert uncached[index]["key"] == cached[index]["key"]
    assert len(uncached._decoded) == 0 and len(cached._decoded) == 2 and len(bounded._decoded) == 1


def test_small_images_are_enlarged_to_the_crop(photo_folder):
    data = RandomCrops(find_images([photo_folder]), 128)
    assert data[0]["pixels"].shape == (3, 128, 128)


def test_sampler_resumes_and_shards_by_step():
    full = iter(StepSampler(2, start_step=0, accumulation=2, rank=1, world=2))
    batches = [next(full) for _ in range(6)]
    resumed = iter(StepSampler(2, start_step=2, accumulation=2, rank=1, world=2))
    assert [next(resumed) for _ in range(2)] == batches[4:6]
    other_rank = iter(StepSampler(2, start_step=0, accumulation=2, rank=0, world=2))
    assert not set(sum([next(other_rank) for _ in range(6)], [])) & set(sum(batches, []))


def test_hard_scenes_change_a_fraction_of_the_crops_and_keep_their_geometry(kodak_dir):
    paths = [kodak_dir / "kodak__kodim01.png", kodak_dir / "kodak__kodim02.png"]
    plain, scenes = RandomCrops(paths, 64, seed=3), RandomCrops(paths, 64, seed=3, hard_scenes=0.5)
    changed = 0
    for index in range(40):
        a, b = plain[index], scenes[index]
        if a["key"] == b["key"]:
            assert torch.equal(a["pixels"], b["pixels"])  # not drawn: the very crop of a run without scenes
            continue
        changed += 1
        assert b["pixels"].shape == a["pixels"].shape and b["pixels"].abs().max() <= 1
        assert torch.equal(b["pixels"], scenes[index]["pixels"])  # a pure function of (seed, index)
    assert 10 <= changed <= 30
    with pytest.raises(ValueError, match="hard_scenes"):
        RandomCrops(paths, 64, hard_scenes=1.5)


def test_each_hard_scene_is_what_it_names(kodak_dir):
    import numpy as np

    from model.training.scenes import SCENES, hard_scene

    with Image.open(kodak_dir / "kodak__kodim01.png") as img:
        crop = img.convert("RGB").crop((0, 0, 256, 256))
    source = np.asarray(crop, dtype=np.float64)
    seen = {}
    for seed in range(40):
        out, name = hard_scene(crop, np.random.default_rng(seed))
        seen.setdefault(name, np.asarray(out, dtype=np.float64))
    assert set(seen) == set(SCENES)
    assert seen["night"].mean() < 0.6 * source.mean()
    assert seen["high_key"].mean() > source.mean() and seen["fog"].std() < 0.6 * source.std()
    gradient = np.abs(np.diff(source, axis=1)).mean()
    assert np.abs(np.diff(seen["soft"], axis=1)).mean() < 0.5 * gradient


def test_a_hard_scene_can_be_named_and_an_unknown_one_is_refused(kodak_dir):
    import numpy as np

    from model.training.scenes import hard_scene

    with Image.open(kodak_dir / "kodak__kodim01.png") as img:
        crop = img.convert("RGB").crop((0, 0, 64, 64))
    for seed in range(5):
        assert hard_scene(crop, np.random.default_rng(seed), "fog")[1] == "fog"
    with pytest.raises(ValueError, match="unknown scene 'rain'"):
        hard_scene(crop, np.random.default_rng(0), "rain")
