"""`tadm eval` and `tadm eval-timesteps` end to end on small crops of real photographs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from model.evaluation.diagnostic import aligned_timestep, timestep_maps
from model.scheduler import alphas_cumprod
from model.tiling import Tiling
from service.cli import main


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_baselines_write_table_csv_plot_and_crops(small_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", str(small_folder), "--scale", "16", "-o", str(out), "--crops", "1"]) == 0
    with (out / "results-16x.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 4
    assert {r["method"] for r in rows} == {"bicubic", "jpeg", "webp", "avif"}
    assert all(r["lpips"] == "" for r in rows)  # absent here: empty, never a number
    assert all(r["thumbnail_psnr"] == "" for r in rows)  # bicubic is the reference, the codecs keep no thumbnail
    bicubic = [r for r in rows if r["method"] == "bicubic"]
    assert all(18 < float(r["psnr_y"]) < 40 for r in bicubic)
    table = (out / "results-16x.md").read_text()
    assert "| bicubic | 2 |" in table and "absent" in table
    with Image.open(out / "rd-16x.png") as plot:
        assert plot.width > 300
    assert len(list((out / "crops").glob("*.png"))) == 1
    assert "PSNR-Y" in capsys.readouterr().out


def test_photos_done_survive_a_stop_part_way(small_folder, tmp_path, monkeypatch):
    import json

    from model.evaluation import evaluate as evaluate_module

    real, calls = evaluate_module.ssimulacra2, []

    def stop_at_the_second_photo(reference, test):
        calls.append(1)
        if len(calls) > 2:  # two methods per photo: the third score is the second photo's
            raise KeyboardInterrupt
        return real(reference, test)

    monkeypatch.setattr(evaluate_module, "ssimulacra2", stop_at_the_second_photo)
    out = tmp_path / "report"
    assert main(["eval", str(small_folder), "--methods", "bicubic,webp", "-o", str(out), "--crops", "0"]) == 130
    document = json.loads((out / "results-16x.json").read_text())
    assert document["images"] == 1 and document["title"].endswith("1 of 2 images, 16x")
    assert [p["image"] for p in document["photos"]] == ["kodak__kodim03.png"]
    assert "kodak__kodim03.png" in (out / "photos-16x.md").read_text()


def test_model_method_with_the_tiny_preset(small_folder, tmp_path):
    out = tmp_path / "model"
    code = main(["eval", str(small_folder), "--methods", "model,bicubic,webp", "--preset", "tiny", "-o", str(out),
                 "--max-images", "1", "--crops", "0", "--device", "cpu", "--budget", "model"])
    assert code == 0
    with (out / "results-16x.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"tadm-tiny", "tadm-tiny-bounded", "bicubic", "webp"}
    assert int(rows["tadm-tiny"]["bytes"]) > 0 and rows["tadm-tiny"]["psnr_y"] != ""
    if "over budget" not in rows["webp"]["detail"]:
        assert int(rows["webp"]["bytes"]) <= int(rows["tadm-tiny"]["bytes"])  # the model's thumbnail is the budget


def test_codecs_take_the_model_bytes_of_an_earlier_evaluation(small_folder, tmp_path, capsys):
    import json

    tiny = ["--preset", "tiny", "--device", "cpu", "--crops", "0"]
    together, first, later = tmp_path / "together", tmp_path / "first", tmp_path / "later"
    assert main(["eval", str(small_folder), "--methods", "model,webp", "--budget", "model", "-o", str(together),
                 *tiny]) == 0
    assert main(["eval", str(small_folder), "--methods", "model", "-o", str(first), *tiny]) == 0
    assert main(["eval", str(small_folder), "--methods", "webp", "--budget-from", str(first / "results-16x.json"),
                 "-o", str(later), "--crops", "0"]) == 0

    def webp(folder):
        photos = json.loads((folder / "results-16x.json").read_text())["photos"]
        return {p["image"]: (p["methods"]["webp"]["bytes"], p["methods"]["webp"]["psnr_y"]) for p in photos}

    assert webp(later) == webp(together)  # the same budget, photo by photo, as with the model in the same run

    assert main(["eval", str(small_folder), "--scale", "32", "--methods", "webp", "--budget-from",
                 str(first / "results-16x.json"), "-o", str(tmp_path / "x")]) == 1
    assert "is a 16x evaluation, not 32x" in capsys.readouterr().err
    one = tmp_path / "one"
    assert main(["eval", str(small_folder), "--methods", "model", "--max-images", "1", "-o", str(one), *tiny]) == 0
    assert main(["eval", str(small_folder), "--methods", "webp", "--budget-from", str(one / "results-16x.json"),
                 "-o", str(tmp_path / "x")]) == 1
    assert "no model result for 1 of the photos, e.g. kodak__kodim23.png" in capsys.readouterr().err


def test_every_photo_is_reported_with_the_model_against_bicubic(small_folder, tmp_path, capsys):
    import json

    out = tmp_path / "photos"
    code = main(["eval", str(small_folder), "--methods", "model,bicubic,jxl", "--preset", "tiny", "-o", str(out),
                 "--crops", "0", "--device", "cpu", "--no-perceptual", "--budget", "model"])
    assert code == 0
    document = json.loads((out / "results-16x.json").read_text())
    assert document["images"] == 2 and len(document["photos"]) == 2
    deltas = []
    for photo in document["photos"]:
        methods = photo["methods"]
        assert set(methods) == {"tadm-tiny", "tadm-tiny-bounded", "bicubic", "jxl"} and photo["width"] > 0
        assert all(m["ssimulacra2"] <= 100 for m in methods.values())  # unbounded below (noise: about -700)
        deltas.append((methods["tadm-tiny"]["psnr_y"] - methods["bicubic"]["psnr_y"], photo["image"]))
        if "over budget" not in methods["jxl"]["detail"]:
            assert methods["jxl"]["bytes"] <= methods["tadm-tiny"]["bytes"]  # JPEG XL at the thumbnail's bytes
    versus = document["model_vs_bicubic"]
    assert versus["worst"] == {"image": min(deltas)[1], "delta_psnr_y": pytest.approx(min(deltas)[0], abs=1e-5)}
    assert versus["below"] == sum(d < 0 for d, _ in deltas) == 2  # random weights: noise, far below bicubic
    assert versus["mean_delta_psnr_y"] == pytest.approx(sum(d for d, _ in deltas) / 2, abs=1e-5)
    # As the service would store them: noise is far below bicubic, so both photos fall back to plain thumbnails.
    kept = document["verified_vs_bicubic"]
    assert kept["fallbacks"] == 2 and kept["mean_delta_psnr_y"] == 0.0 and kept["below_by_more_than_0.5"] == 0
    table = (out / "photos-16x.md").read_text()
    assert all(name in table for _, name in deltas) and "2 below bicubic" in table and "2 plain" in table
    printed = capsys.readouterr().out
    assert "2 below bicubic" in printed and "2 plain" in printed


def _tiny_model_rows(folder, out, *extra) -> dict[str, dict]:
    """`tadm eval --methods model` of the tiny preset on the folder's first photo: its CSV rows by method."""
    code = main(["eval", str(folder), "--methods", "model", "--preset", "tiny", "-o", str(out),
                 "--max-images", "1", "--crops", "0", "--device", "cpu", "--no-perceptual", *extra])
    assert code == 0
    with (out / "results-16x.csv").open() as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def test_the_model_is_also_scored_as_the_service_stores_it_its_thumbnail_within_the_bound(small_folder, tmp_path,
                                                                                            capsys):
    def rows(*extra):
        return _tiny_model_rows(small_folder, tmp_path / "-".join(("b",) + extra), *extra)

    noisy = rows()  # random weights: the thumbnail strays far beyond the default 48 levels
    assert float(noisy["tadm-tiny"]["thumbnail_worst"]) > 48
    assert float(noisy["tadm-tiny-bounded"]["thumbnail_worst"]) <= 48
    assert noisy["tadm-tiny-bounded"]["psnr_y"] != noisy["tadm-tiny"]["psnr_y"]  # another thumbnail, reconstructed
    assert "pulled in to 48 levels" in noisy["tadm-tiny-bounded"]["detail"]
    loose = rows("--thumbnail-max-deviation", "255")  # nothing beyond: the model's own reconstruction, renamed
    assert loose["tadm-tiny-bounded"]["psnr_y"] == loose["tadm-tiny"]["psnr_y"] == noisy["tadm-tiny"]["psnr_y"]
    assert loose["tadm-tiny-bounded"]["detail"].endswith("within 255 levels as made")
    assert main(["eval", str(small_folder), "--methods", "model", "--preset", "tiny", "-o", str(tmp_path / "x"),
                 "--thumbnail-max-deviation", "-1"]) == 1
    assert "--thumbnail-max-deviation must be at least 0 levels, not -1" in capsys.readouterr().err


def test_direct_method_decodes_the_same_thumbnail_without_the_diffusion_step(small_folder, tmp_path):
    out = tmp_path / "direct"
    code = main(["eval", str(small_folder), "--methods", "model,direct", "--preset", "tiny", "-o", str(out),
                 "--max-images", "1", "--crops", "0", "--device", "cpu", "--no-perceptual"])
    assert code == 0
    with (out / "results-16x.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"tadm-tiny", "tadm-tiny-bounded", "tadm-tiny-direct"}
    assert rows["tadm-tiny"]["bytes"] == rows["tadm-tiny-direct"]["bytes"]  # one thumbnail, two receivers
    assert rows["tadm-tiny"]["psnr_y"] != rows["tadm-tiny-direct"]["psnr_y"]  # the diffusion step changes pixels
    assert "no diffusion step" in rows["tadm-tiny-direct"]["detail"]
    thumbnail_psnr = float(rows["tadm-tiny"]["thumbnail_psnr"])  # the same thumbnail, scored once per receiver
    assert thumbnail_psnr == float(rows["tadm-tiny-direct"]["thumbnail_psnr"]) and 0 < thumbnail_psnr < 60
    assert "thumbnail PSNR" in (out / "results-16x.md").read_text()


def test_tile_size_and_stride_reach_the_receiver_and_are_named(small_folder, tmp_path):
    def model_row(*tiling_args):
        return _tiny_model_rows(small_folder, tmp_path / "-".join(("o",) + tiling_args), *tiling_args)["tadm-tiny"]

    default = model_row()
    small = model_row("--tile-size", "16", "--tile-stride", "8")  # the 32x24 latent in six tiles, not one pass
    assert default["detail"].endswith("latent tiles 96/64")  # the tiny preset's default, named all the same
    assert small["detail"].endswith("latent tiles 16/8")
    assert small["bytes"] == default["bytes"]  # the same thumbnail
    assert small["psnr_y"] != default["psnr_y"]  # another receiver result


def test_attention_pool_reaches_the_receiver_and_is_named(small_folder, tmp_path):
    default = _tiny_model_rows(small_folder, tmp_path / "exact")["tadm-tiny"]
    pooled = _tiny_model_rows(small_folder, tmp_path / "pooled", "--attention-pool", "2")["tadm-tiny"]
    assert "attention pooled" not in default["detail"]  # the tiny preset attends exactly
    assert "latent tiles 96/64, attention pooled by 2" in pooled["detail"]
    assert pooled["bytes"] == default["bytes"] and pooled["psnr_y"] != default["psnr_y"]  # same thumbnail


def test_direct_model_is_a_second_model_directory(small_folder, tmp_path, capsys):
    from model.pipeline import TADMPipeline

    stage1 = TADMPipeline.from_preset("tiny", scale=16, seed=7).save_pretrained(tmp_path / "stage1")
    out = tmp_path / "o"
    code = main(["eval", str(small_folder), "--methods", "model,direct", "--preset", "tiny", "--direct-model",
                 str(stage1), "-o", str(out), "--max-images", "1", "--crops", "0", "--device", "cpu",
                 "--no-perceptual"])
    assert code == 0
    with (out / "results-16x.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert rows["tadm-tiny-direct"]["detail"].startswith(f"model {TADMPipeline.from_pretrained(stage1).model_id}")
    assert rows["tadm-tiny-direct"]["detail"] != rows["tadm-tiny"]["detail"]
    assert main(["eval", str(small_folder), "--methods", "bicubic", "--direct-model", str(stage1),
                 "-o", str(tmp_path / "x")]) == 1
    assert "add it to --methods" in capsys.readouterr().err
    assert main(["eval", str(small_folder), "--methods", "direct", "--preset", "tiny", "--direct-model",
                 str(tmp_path / "missing"), "-o", str(tmp_path / "y")]) == 1
    assert "missing" in capsys.readouterr().err


@pytest.fixture(scope="module")
def uneven_folder(tmp_path_factory, kodak_dir):
    """Five crops of Kodak photographs, from 64x64 to 256x192: a split by count would not be even in pixels."""
    folder = tmp_path_factory.mktemp("uneven_kodak")
    sizes = {"kodim03": (256, 192), "kodim05": (192, 128), "kodim07": (128, 128), "kodim15": (96, 64),
             "kodim23": (64, 64)}
    for stem, (w, h) in sizes.items():
        with Image.open(kodak_dir / f"kodak__{stem}.png") as img:
            img.convert("RGB").crop((0, 0, w, h)).save(folder / f"{stem}.png")
    return folder


def test_shards_split_the_photos_evenly_in_pixels(uneven_folder):
    from model.evaluation.evaluate import list_images, shard_by_pixels

    paths = list_images(uneven_folder)
    parts = [shard_by_pixels(paths, i, 2) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == paths and not set(parts[0]) & set(parts[1])
    assert all(part == sorted(part) for part in parts)
    def pixels(path):
        with Image.open(path) as img:
            return img.width * img.height

    loads = [sum(pixels(p) for p in part) for part in parts]
    # 49152 | 24576 + 16384 + 6144 + 4096: the largest photo alone, the rest together
    assert loads == [49152, 51200]
    assert shard_by_pixels(paths, 0, 1) == paths
    with pytest.raises(ValueError, match="index runs from 0 to 1"):
        shard_by_pixels(paths, 2, 2)


def test_sharded_evaluations_join_into_the_whole_one(uneven_folder, tmp_path, capsys):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    common = ["--methods", "bicubic,webp", "--crops", "0"]
    assert main(["eval", str(uneven_folder), *common, "-o", str(tmp_path / "whole")]) == 0
    for i in range(2):
        assert main(["eval", str(uneven_folder), *common, "--shard", f"{i}/2", "-o", str(tmp_path / f"part{i}")]) == 0
    documents = [json.loads((tmp_path / f"part{i}" / "results-16x.json").read_text()) for i in range(2)]
    assert [d["images"] for d in documents] == [1, 4] and "(part 0/2)" in documents[0]["title"]
    done = subprocess.run([sys.executable, str(repo / "scripts" / "join_eval_results.py"),
                           *(str(tmp_path / f"part{i}" / "results-16x.json") for i in range(2)),
                           "--title", uneven_folder.name, "-o", str(tmp_path / "joined")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    whole = json.loads((tmp_path / "whole" / "results-16x.json").read_text())
    joined = json.loads((tmp_path / "joined" / "results-16x.json").read_text())
    assert joined["photos"] == whole["photos"] and joined["means"] == whole["means"]
    capsys.readouterr()
    for bad, message in (("2/2", "index runs from 0 to 1"), ("1", "is not I/N"), ("a/b", "is not I/N"),
                         ("0/0", "is not I/N")):
        assert main(["eval", str(uneven_folder), *common, "--shard", bad, "-o", str(tmp_path / "bad")]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_bad_arguments_are_one_line_errors(small_folder, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["eval", str(small_folder), "--methods", "gif", "-o", str(tmp_path / "o")]) == 1
    assert "unknown" in capsys.readouterr().err
    assert main(["eval", str(small_folder), "--methods", "model", "-o", str(tmp_path / "o")]) == 1
    assert "--model" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["eval", str(broken), "-o", str(tmp_path / "o")]) == 1
    assert "a.png is not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # stopped before writing anything
    assert main(["eval", str(small_folder), "--budget", "model", "-o", str(tmp_path / "o")]) == 1
    assert "needs the `model` method" in capsys.readouterr().err
    assert main(["eval", str(small_folder), "--tile-size", "8", "--tile-stride", "16", "-o", str(tmp_path / "o")]) == 1
    assert "stride" in capsys.readouterr().err


def test_aligned_timestep_recovers_the_forward_diffusion_step():
    """ẑ made by forward diffusion of z at step t: the solved t* is t (up to sampling noise)."""
    acp = alphas_cumprod(0.00085, 0.012, 1000, "scaled_linear")
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 64, 64, generator=gen)
    for t in (20, 100, 400):
        noisy = acp[t].sqrt().float() * z + (1 - acp[t]).sqrt().float() * torch.randn(z.shape, generator=gen)
        assert aligned_timestep(noisy, z, acp) == pytest.approx(t, abs=t * 0.05 + 2)


def test_timestep_maps_and_their_plot(kodak_dir, tmp_path):
    from model.pipeline import TADMPipeline

    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    with Image.open(kodak_dir / "kodak__kodim23.png") as img:
        image = img.convert("RGB").crop((0, 0, 256, 192))  # latent 32x24 -> 3x2 tiles of 16, stride 8
    maps = timestep_maps(pipe, image, Tiling(tile_size=16, tile_stride=8))
    assert maps.predicted.shape == maps.aligned.shape == (2, 3)
    assert np.all((maps.predicted >= 10) & (maps.predicted <= 200))
    assert np.all(maps.aligned >= 0)
    image.save(tmp_path / "crop.png")
    out = tmp_path / "t.png"
    code = main(["eval-timesteps", str(tmp_path / "crop.png"), "--preset", "tiny", "-o", str(out),
                 "--tile-size", "16", "--tile-stride", "8", "--device", "cpu"])
    assert code == 0
    with Image.open(out) as plot:
        assert plot.width > plot.height  # two maps side by side
