from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from model import TADMPipeline
from model import consistency as step_module
from model.consistency import CONSISTENCY_DIR, ThumbnailConsistency, down, pad_to_scale, up
from model.image_tensors import tensor_to_uint8
from model.training import consistency as training
from model.training.data import find_images


def test_an_untrained_step_gives_the_reconstruction_back():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 70, 100, generator=generator) * 2 - 1  # not a multiple of the scale: padded
    thumbnail = torch.rand(1, 3, 5, 7, generator=generator) * 2 - 1
    with torch.no_grad():
        shut = ThumbnailConsistency(scale=16, channels=8, num_layers=3).correct(thumbnail, image)
        trained = ThumbnailConsistency(scale=16, channels=8, num_layers=3, gate_start=3.0, gate_gain=8.0)
        default = trained.correct(thumbnail, image)
    assert shut.shape == image.shape
    assert float((shut - image).abs().max()) < 2e-3
    # the trained steps' start keeps sigmoid(3) = 95 % of the detail above the thumbnail's frequencies and changes nothing else
    low = up(down(pad_to_scale(image, 16), 16), (80, 112))[..., :70, :100]
    assert torch.allclose(default - low, torch.sigmoid(torch.tensor(3.0)) * (image - low), atol=1e-4)


def smooth_photo_with_grain(seed: int) -> training.Example:
    """A smooth gradient and a reconstruction of it with fine grain on top: the gate should close."""
    generator = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(60, 190, 128)
    original = torch.stack((ramp[None, :].expand(128, 128), ramp[:, None].expand(128, 128),
                            torch.full((128, 128), 120.0)))[None]
    grain = torch.randn(1, 3, 128, 128, generator=generator) * 6
    reconstruction = (original + grain).round().clamp(0, 255).to(torch.uint8)
    thumbnail = down(original / 127.5 - 1, 16)
    return training.Example(f"ramp{seed}", original.round().to(torch.uint8), thumbnail, reconstruction)


def test_the_gate_learns_to_drop_grain_from_a_smooth_photo():
    """The detail gate must be trainable from its start: a gate started saturated (logit 8) stays open, the
    one the training starts closes over grain the thumbnail says is not there."""
    examples = [smooth_photo_with_grain(seed) for seed in range(3)]
    gates = {}
    for start, gain in ((8.0, 1.0), (step_module.TRAINED_GATE_START, step_module.TRAINED_GATE_GAIN)):
        module = ThumbnailConsistency(scale=16, channels=8, num_layers=3, gate_start=start, gate_gain=gain)
        torch.manual_seed(0)
        training.train(module, examples, steps=60, lr=3e-3, crop=128, batch=3, log=lambda _: None)
        with torch.no_grad():
            _, g = module(examples[0].thumbnail, down(training.from_levels(examples[0].reconstruction), 16))
        rows = training.evaluate(module, examples)
        gates[start] = (float(g.mean()), sum(after - before for _, before, after in rows) / len(rows))
    assert gates[8.0][0] > 0.99, gates  # what the shipped steps' gates did: nothing
    assert gates[step_module.TRAINED_GATE_START][0] < 0.5 and gates[step_module.TRAINED_GATE_START][1] > gates[8.0][1] + 3, gates


def test_the_correction_changes_what_a_bicubic_thumbnail_sees_and_nothing_finer():
    module = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    with torch.no_grad():
        module.head.bias[:3] = torch.tensor([0.2, -0.1, 0.05])  # a constant r: a colour shift
    with torch.no_grad():
        corrected = module.correct(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 64, 64))
    own = down(pad_to_scale(corrected, 16), 16)
    assert torch.allclose(own.mean((2, 3)), torch.tensor([[0.2, -0.1, 0.05]]), atol=1e-3)


def collected(pipe, kodak_dir, tmp_path, names, hard_scenes=False):
    photos = tmp_path / "photos"
    photos.mkdir(parents=True)
    for name in names:
        Image.open(kodak_dir / f"kodak__{name}.png").convert("RGB").crop((0, 0, 256, 192)).save(photos / f"{name}.png")
    cache = tmp_path / "cache"
    made = training.collect(pipe, find_images([photos]), cache, log=lambda _: None, hard_scenes=hard_scenes)
    assert made == len(names) * (2 if hard_scenes else 1)
    assert training.collect(pipe, find_images([photos]), cache, log=lambda _: None, hard_scenes=hard_scenes) == 0
    return cache


def test_hard_scene_variants_are_collected_once_each_and_differ_from_their_photo(tiny_pipe, kodak_dir, tmp_path):
    cache = collected(tiny_pipe, kodak_dir, tmp_path, ["kodim05", "kodim23"], hard_scenes=True)
    folders = sorted(f.name for f in cache.iterdir())
    assert len(folders) == 4 and folders[0] == "kodim05" and folders[2] == "kodim23"
    for photo, variant in (folders[:2], folders[2:]):
        assert variant == training.variant_name(photo) and training.source_photo(variant) == photo
        original = np.asarray(Image.open(cache / photo / "original.png"), dtype=float)
        changed = np.asarray(Image.open(cache / variant / "original.png"), dtype=float)
        assert changed.shape == original.shape and np.abs(changed - original).mean() > 5
        # the same variant again: drawn from the photo's name, not from the order of collection
        again = training.hard_variant(Image.open(cache / photo / "original.png"), photo)
        assert np.array_equal(np.asarray(again), changed.astype(np.uint8))


def test_collecting_with_a_model_that_has_a_step_keeps_the_decoders_own_output(tiny_pipe, kodak_dir, tmp_path):
    """A new step is trained on what the decoder gives it at serving, not on the output of the step it replaces;
    and a photo interrupted after its thumbnail resumes to the same reconstruction."""
    plain = collected(tiny_pipe, kodak_dir, tmp_path / "plain", ["kodim23"])
    pipe = copy.copy(tiny_pipe)
    pipe.consistency = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    with torch.no_grad():
        pipe.consistency.head.bias[:3] = 0.1  # brighter by 12.75 levels where it applies
    with_step = collected(pipe, kodak_dir, tmp_path / "with-step", ["kodim23"])
    assert pipe.consistency is not None  # the caller's pipeline keeps its step
    expected = np.asarray(Image.open(plain / "kodim23" / "reconstruction.png"))
    assert np.array_equal(np.asarray(Image.open(with_step / "kodim23" / "reconstruction.png")), expected)

    (with_step / "kodim23" / "reconstruction.png").unlink()
    assert training.collect(pipe, find_images([tmp_path / "with-step" / "photos"]), with_step,
                            log=lambda _: None) == 1
    assert np.array_equal(np.asarray(Image.open(with_step / "kodim23" / "reconstruction.png")), expected)


def test_a_held_out_photo_takes_its_hard_scene_variant_with_it(tiny_pipe, kodak_dir, tmp_path, capsys):
    cache = collected(tiny_pipe, kodak_dir, tmp_path, ["kodim01", "kodim05", "kodim23"], hard_scenes=True)
    out = tmp_path / "step"
    assert training.main(["train", "--cache", str(cache), "--scale", "16", "--steps", "5", "--channels", "8",
                          "--layers", "3", "--validation", "1", "-o", str(out)]) == 0
    record = json.loads((out / training.RECORD_NAME).read_text())
    held = [row["photo"] for row in record["held_out"]]
    assert record["photos"] == 2 and record["hard_scene_variants"] == 2 and len(held) == 2
    assert training.source_photo(held[1]) == held[0] and held[1] == training.variant_name(held[0])
    assert "their hard-scene variants" in capsys.readouterr().out


def test_the_photos_named_in_a_list_are_held_out_instead_of_random_ones(tiny_pipe, kodak_dir, tmp_path):
    cache = collected(tiny_pipe, kodak_dir, tmp_path, ["kodim01", "kodim05", "kodim23"], hard_scenes=True)
    listing = tmp_path / "hold-out.txt"
    listing.write_text("# chosen for the test\nkodim05\n\nkodim23\n")
    out = tmp_path / "step"
    assert training.main(["train", "--cache", str(cache), "--scale", "16", "--steps", "5", "--channels", "8",
                          "--layers", "3", "--hold-out", str(listing), "-o", str(out)]) == 0
    record = json.loads((out / training.RECORD_NAME).read_text())
    held = sorted(training.source_photo(row["photo"]) for row in record["held_out"])
    assert held == ["kodim05", "kodim05", "kodim23", "kodim23"]  # each with its variant
    assert record["photos"] == 1 and record["hold_out"] == str(listing)
    listing.write_text("kodim05\nkodim99\n")
    with pytest.raises(SystemExit, match="1 photo.* not collected: kodim99"):
        training.main(["train", "--cache", str(cache), "--hold-out", str(listing), "-o", str(tmp_path / "x")])
    listing.write_text("kodim01\nkodim05\nkodim23\n")
    with pytest.raises(SystemExit, match="none is left to train on"):
        training.main(["train", "--cache", str(cache), "--hold-out", str(listing), "-o", str(tmp_path / "x")])


@pytest.mark.parametrize("low_steps, steps", [(0, 150), (150, 0)])
def test_training_on_a_photo_lifts_its_reconstruction(tiny_pipe, kodak_dir, tmp_path, low_steps, steps):
    """The tiny random model reconstructs badly; what the thumbnail says about the low frequencies lifts it,
    learnt from the whole photo (steps) or from the thumbnails alone (low_steps)."""
    examples = training.load_examples(collected(tiny_pipe, kodak_dir, tmp_path, ["kodim23"]))
    module = ThumbnailConsistency(scale=16, channels=16, num_layers=3)
    torch.manual_seed(0)
    training.train(module, examples, steps=steps, lr=3e-3, crop=128, low_steps=low_steps, low_crop=8,
                   log=lambda _: None)
    ((name, before, after),) = training.evaluate(module, examples)
    assert name == "kodim23" and after > before + 3, (before, after)


def test_the_command_line_trains_holds_photos_out_and_records_it(tiny_pipe, kodak_dir, tmp_path, capsys):
    cache = collected(tiny_pipe, kodak_dir, tmp_path, ["kodim01", "kodim05", "kodim23"])
    tiny_pipe.save_pretrained(tmp_path / "model")
    out = tmp_path / "model" / CONSISTENCY_DIR
    assert training.main(["train", "--cache", str(cache), "--model", str(tmp_path / "model"), "--steps", "20",
                          "--low-steps", "20", "--channels", "8", "--layers", "3", "--validation", "1",
                          "-o", str(out)]) == 0
    record = json.loads((out / training.RECORD_NAME).read_text())
    assert record["photos"] == 2 and record["hard_scene_variants"] == 0
    assert record["steps"] == 20 and record["low_steps"] == 20
    (held,) = record["held_out"]
    assert held["photo"] in {"kodim01", "kodim05", "kodim23"} and held["psnr_before"] > 5
    step = TADMPipeline.from_pretrained(tmp_path / "model").consistency
    assert step is not None and step.config.gate_gain == record["gate_gain"] == step_module.TRAINED_GATE_GAIN
    assert "held-out photos" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="collect more than --validation"):
        training.main(["train", "--cache", str(cache), "--validation", "3", "-o", str(tmp_path / "x")])


def test_a_model_with_the_step_saves_loads_and_keeps_its_id(tiny_pipe, kodak_image, tmp_path):
    image = Image.open(kodak_image).convert("RGB").crop((0, 0, 200, 136))
    thumbnail = tiny_pipe.downscale(image)
    without = np.asarray(tiny_pipe.upscale(thumbnail))

    pipe = copy.copy(tiny_pipe)
    pipe.consistency = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    with torch.no_grad():
        pipe.consistency.head.bias[:3] = 0.1  # brighter
    pipe.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / CONSISTENCY_DIR / "config.json").is_file()
    loaded = TADMPipeline.from_pretrained(tmp_path / "model")
    assert loaded.model_id == tiny_pipe.model_id  # thumbnails made before the step still decode
    with_step = np.asarray(loaded.upscale(thumbnail))
    assert with_step.shape == without.shape
    # r = 0.1 in [-1,1] is 12.75 levels; clipping at 255 keeps some pixels from gaining all of it
    assert 10 < float(with_step.astype(float).mean() - without.astype(float).mean()) < 13


def test_a_step_for_another_scale_is_refused(tiny_pipe, tmp_path):
    pipe = copy.copy(tiny_pipe)
    pipe.consistency = ThumbnailConsistency(scale=32, channels=8, num_layers=3)
    pipe.save_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match="trained for 32x but the model is 16x"):
        TADMPipeline.from_pretrained(tmp_path / "model")


@pytest.mark.parametrize("h, w", [(70, 100), (64, 48), (33, 17)])
def test_the_fast_correction_computes_what_the_formula_says(h, w):
    """correct() upsamples by matrix products and pads by copies; the formula with F.pad and F.interpolate."""
    generator = torch.Generator().manual_seed(h)
    image = torch.rand(1, 3, h, w, generator=generator) * 2 - 1
    module = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3, generator=generator)
        padded = torch.nn.functional.pad(image, (0, -w % 16, 0, -h % 16), mode="reflect")
        own = down(padded, 16)
        thumbnail = torch.rand(own.shape, generator=generator) * 2 - 1
        r, g = module(thumbnail, own)
        size = padded.shape[-2:]
        expected = (up(own + r, size) + up(g, size) * (padded - up(own, size)))[..., :h, :w]
        assert 0.05 < float(g.std())  # the gate varies: the test would see a wrong gate
        assert torch.allclose(module.correct(thumbnail, image), expected, atol=1e-5)


def test_windows_where_bicubic_wins_are_where_the_reconstruction_adds_grain():
    example = smooth_photo_with_grain(0)
    exact_left = example.reconstruction.clone()
    exact_left[..., :64] = example.original[..., :64]  # the left half reconstructed exactly
    item = training.Prepared.of(training.Example("half", example.original, example.thumbnail, exact_left), 16)
    corners = training.bicubic_wins(item, 2)
    assert len(corners) > 0
    assert int(corners[:, 1].min()) >= 3  # only windows reaching into the grainy right half (thumbnail columns 4-7)
    assert {int(tx) for tx in corners[:, 1]} >= {4, 5, 6}


def test_training_can_draw_its_windows_where_bicubic_wins():
    examples = [smooth_photo_with_grain(seed) for seed in range(2)]
    messages: list[str] = []
    module = ThumbnailConsistency(scale=16, channels=8, num_layers=3, gate_start=step_module.TRAINED_GATE_START,
                                  gate_gain=step_module.TRAINED_GATE_GAIN)
    training.train(module, examples, steps=5, lr=3e-3, crop=32, batch=2, log=messages.append, smooth_share=1.0)
    assert "windows where bicubic wins: 2 of 2 photos" in messages


def test_compare_reports_each_steps_gain_over_all_photos_and_where_bicubic_wins(tmp_path, capsys):
    cache = tmp_path / "cache"
    for seed in range(2):
        example = smooth_photo_with_grain(seed)
        folder = cache / example.name
        folder.mkdir(parents=True)
        Image.fromarray(example.original[0].permute(1, 2, 0).numpy()).save(folder / "original.png")
        Image.fromarray(tensor_to_uint8(example.thumbnail)).save(folder / "thumbnail.png")
        Image.fromarray(example.reconstruction[0].permute(1, 2, 0).numpy()).save(folder / "reconstruction.png")
    untrained = ThumbnailConsistency(scale=16, channels=8, num_layers=3)  # exactly the reconstruction
    trained = ThumbnailConsistency(scale=16, channels=8, num_layers=3, gate_start=step_module.TRAINED_GATE_START,
                                   gate_gain=step_module.TRAINED_GATE_GAIN)
    training.train(trained, training.load_examples(cache), steps=60, lr=3e-3, crop=128, batch=2, log=lambda _: None)
    untrained.save_pretrained(tmp_path / "untrained")
    trained.save_pretrained(tmp_path / "trained")
    assert training.main(["compare", "--cache", str(cache), "--scale", "16", f"a={tmp_path / 'untrained'}",
                          f"b={tmp_path / 'trained'}"]) == 0
    out = capsys.readouterr().out
    # grain on a smooth photo: bicubic wins on both, the untrained step changes nothing, the trained one gains
    gains = re.search(r"all \(2 photos\): mean gain over no step a ([-+.\d]+), b ([-+.\d]+) dB", out)
    assert gains and float(gains[1]) == 0 and float(gains[2]) > 3, out
    assert "where bicubic wins (2 photos)" in out
    worst = re.search(r"all: worst photo a ([-+.\d]+) dB \((\S+)\), b ([-+.\d]+) dB \((\S+)\)", out)
    assert worst and float(worst[1]) == 0 and 0 < float(worst[3]) <= float(gains[2]), out
    assert worst[4] in {p.name for p in cache.iterdir()}
    # the untrained step leaves both photos where they were: below bicubic; the trained one lifts them
    below = re.search(r"all: more than 0.5 dB below bicubic: no step (\d), a (\d), b (\d)", out)
    assert below and below[1] == below[2] == "2" and int(below[3]) < 2, out
    # --only: the photos of a list alone
    only = tmp_path / "only.txt"
    only.write_text(f"{sorted(p.name for p in cache.iterdir())[0]}\n")
    assert training.main(["compare", "--cache", str(cache), "--scale", "16", "--only", str(only),
                          f"b={tmp_path / 'trained'}"]) == 0
    assert "all (1 photos)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not LABEL=STEP_DIR"):
        training.main(["compare", "--cache", str(cache), "--scale", "16", str(tmp_path / "trained")])
    with pytest.raises(SystemExit, match="trained for 16x, not 32x"):
        training.main(["compare", "--cache", str(cache), "--scale", "32", f"b={tmp_path / 'trained'}"])


def test_combine_keeps_or_replaces_the_low_frequencies_and_leaves_its_input_alone():
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 40, 72, generator=generator) * 2 - 1  # 40 is not a multiple of 16
    before = image.clone()
    own = down(pad_to_scale(image, 16), 16)
    low = torch.rand(own.shape, generator=generator) * 2 - 1
    gate = torch.ones(1, 1, *own.shape[-2:])
    assert torch.allclose(step_module.combine(image, own, own, gate, 16), image, atol=1e-5)
    only_low = step_module.combine(image, low, own, torch.zeros_like(gate), 16)
    assert torch.allclose(only_low, up(low, (48, 80))[..., :40, :72], atol=1e-5)
    assert torch.equal(image, before)


def load_oracle_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "consistency_oracle.py"
    spec = importlib.util.spec_from_file_location("consistency_oracle", path)
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    return oracle


def test_the_fitted_colour_map_undoes_an_affine_colour_change():
    generator = torch.Generator().manual_seed(5)
    target = torch.rand(1, 3, 6, 9, generator=generator) * 2 - 1
    mix = torch.tensor([[0.9, 0.1, 0.0], [0.05, 1.1, -0.1], [0.0, 0.2, 0.7]])
    changed = torch.einsum("ij,bjhw->bihw", mix, target) + torch.tensor([0.1, -0.2, 0.05]).view(1, 3, 1, 1)
    fitted = load_oracle_script().fitted_colour_map(changed, target)
    assert float((changed - target).abs().max()) > 0.1
    assert torch.allclose(fitted, target, atol=1e-5)


def test_a_lattice_of_colour_maps_undoes_a_colour_change_that_varies_over_the_photo():
    oracle = load_oracle_script()
    estimate = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16)  # the photo is brighter and redder to the right, linearly
    target = estimate * (1 + 0.3 * ramp) + torch.tensor([0.2, 0.0, -0.1]).view(1, 3, 1, 1) * ramp
    assert torch.allclose(oracle.grid_weights(12, 16, 3).sum(0), torch.ones(12, 16, dtype=torch.float64))
    one = oracle.fitted_colour_map(estimate, target)
    assert float((one - target).abs().max()) > 0.02  # one map for the whole image cannot follow the ramp
    assert torch.allclose(oracle.fitted_colour_map(estimate, target, 2), target, atol=1e-5)


def test_the_oracle_script_scores_the_served_reconstruction_as_the_pipeline_serves_it(tiny_pipe, kodak_image):
    """scripts/consistency_oracle.py takes the pipeline apart; its `served` figure must be what upscale() gives."""
    from model.evaluation.metrics import psnr, rgb_to_y

    oracle = load_oracle_script()
    pipe = copy.copy(tiny_pipe)
    pipe.consistency = ThumbnailConsistency(scale=16, channels=8, num_layers=3, gate_start=0.0, gate_gain=8.0)
    with torch.no_grad():
        pipe.consistency.head.bias[:3] = 0.05  # r moves the low frequencies; the gate keeps half the detail
    photo = Image.open(kodak_image).convert("RGB").crop((0, 0, 200, 136))
    figures = oracle.measure(pipe, photo)
    served = np.asarray(pipe.upscale(pipe.downscale(photo, learned=True)))
    assert figures["served"] == pytest.approx(psnr(rgb_to_y(np.asarray(photo)), rgb_to_y(served)), abs=1e-6)
    # the oracle's low frequencies are the photo's own: closer to the photo than a shifted estimate
    assert figures["true_low"] > figures["served"]
    assert figures["step_thumb"] != pytest.approx(figures["own_thumb"])
    # a colour map fitted by least squares can only bring the estimate closer to the photo's thumbnail
    assert figures["fitted_thumb"] >= figures["step_thumb"]


def test_a_step_with_global_context_sees_the_whole_thumbnail_and_a_local_one_does_not():
    """The rescaler's colour shifts depend on the whole photo: with `global_context` a change far away (beyond the
    convolutions' reach) moves the correction here; without it nothing moves."""
    generator = torch.Generator().manual_seed(7)
    thumbnail = torch.rand(1, 3, 24, 24, generator=generator) * 2 - 1
    own = torch.rand(1, 3, 24, 24, generator=generator) * 2 - 1
    far = thumbnail.clone()
    far[..., 16:, 16:] += 0.5  # 12+ pixels from the corner looked at; three layers reach 3
    for with_context in (False, True):
        module = ThumbnailConsistency(scale=16, channels=8, num_layers=3, global_context=with_context)
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0, 0.3, generator=generator)
            near_corner = (module(thumbnail, own)[0] - module(far, own)[0])[..., :4, :4].abs().max()
        assert (float(near_corner) > 1e-3) == with_context


def test_a_crop_with_the_whole_thumbnails_context_gives_what_the_whole_thumbnail_gives_inside():
    """Training looks at crops; the step at serving at the whole thumbnail: the context must be the same."""
    generator = torch.Generator().manual_seed(8)
    thumbnail = torch.rand(1, 3, 20, 30, generator=generator) * 2 - 1
    own = torch.rand(1, 3, 20, 30, generator=generator) * 2 - 1
    module = ThumbnailConsistency(scale=16, channels=8, num_layers=3, global_context=True)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3, generator=generator)
        whole, _ = module(thumbnail, own)
        context = step_module.global_context(thumbnail, own)
        crop, _ = module(thumbnail[..., 2:18, 5:25], own[..., 2:18, 5:25], context)
        crop_alone, _ = module(thumbnail[..., 2:18, 5:25], own[..., 2:18, 5:25])
    inner = (..., slice(3, 13), slice(3, 17))  # beyond the reach of the crop's edges
    assert torch.allclose(crop[inner], whole[..., 2:18, 5:25][inner], atol=1e-5)
    assert not torch.allclose(crop_alone[inner], whole[..., 2:18, 5:25][inner], atol=1e-3)


def test_a_step_trained_with_global_context_is_saved_as_one_and_serves_as_trained(tiny_pipe, kodak_dir, tmp_path):
    from model.training.consistency_examples import evaluate, load_examples

    cache = collected(tiny_pipe, kodak_dir, tmp_path, ["kodim01", "kodim23"])
    out = tmp_path / "step"
    assert training.main(["train", "--cache", str(cache), "--scale", "16", "--low-steps", "3", "--steps", "3",
                          "--channels", "8", "--layers", "3", "--validation", "1", "--global-context",
                          "-o", str(out)]) == 0
    record = json.loads((out / training.RECORD_NAME).read_text())
    loaded = ThumbnailConsistency.from_pretrained(out)
    assert record["global_context"] is True and loaded.config.global_context is True
    # the loaded step corrects the held-out photo exactly as the trained one did (its context included)
    (held,) = record["held_out"]
    (row,) = evaluate(loaded, [ex for ex in load_examples(cache) if ex.name == held["photo"]])
    assert row[2] == pytest.approx(held["psnr_after"], abs=1e-4)
    assert row[2] != pytest.approx(row[1], abs=1e-6)  # and it does correct something
