"""The serving optimisations change speed, not results: each switch is compared with the plain pipeline.

Tiny preset on CPU in float32, a 128x128 crop of a real Kodak photograph, latent tiles of 8 with stride 4 so
that its 16x16 latent has 9 overlapping tiles (the default 96 would make it one tile and batch nothing).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import TADMPipeline, lora
from model.performance import (
    merge_lora_in_float32,
    optimize_for_inference,
    optimize_for_serving,
    static_batch_step,
)
from model.tiling import Tiling, denoise_tiled

REPO = Path(__file__).resolve().parents[2]
TILES = {"tile_size": 8, "tile_stride": 4}  # small tiles: several of them on a 128 px photo
# float32 on CPU: reordering sums (a merged weight, NHWC convolutions, fused attention) moves latents and pixels
# (both of order 1) by ~1e-4 at most; 5e-4 is 1/16 of an 8-bit level (2/255 in [-1, 1]).
TOLERANCE = 5e-4
# PyTorch's CPU group norm on NHWC tensors accumulates mean and variance in one pass (E[x²] - E[x]², see
# pytorch/pytorch#54293), which cancels badly when a group's mean is large against its spread: measured 2.5e-4
# on this crop's pixels and 1.1e-3 on a 256x256 crop's latent, against ~1e-5 for NCHW. CUDA serving is where
# channels_last pays; a CPU worker leaves it off.
CHANNELS_LAST_TOLERANCE = 5e-3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module: tiny tensors gain nothing from fan-out, and on a busy 2-core machine
    OpenMP's waiting made these tests 10x slower (measured: a 9-tile denoise 0.1 s vs 0.9 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photo(kodak_dir: Path) -> Image.Image:
    """A 128x128 crop of kodim01 (brick, wood and a window frame)."""
    with Image.open(kodak_dir / "kodak__kodim01.png") as image:
        return image.convert("RGB").crop((320, 192, 448, 320))


@pytest.fixture(scope="module")
def z_hat(photo) -> torch.Tensor:
    """The degraded latent of the photo (16x16 latent pixels), shared read-only by the tests."""
    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    return pipe.thumbnail_to_latent(pipe.downscale(photo))


def fresh_pipe() -> TADMPipeline:
    """A new pipeline per test: the optimisations act in place."""
    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


def randomize_lora_b(module: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    """peft initialises LoRA-B to zero, which would make merged == unmerged trivially true."""
    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora.lora_layers(module):
            for linear in layer.lora_B.values():
                linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * std)


def reconstruct(pipe: TADMPipeline, z_hat: torch.Tensor, tile_batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(merged clean latent, decoded pixels in [-1, 1] before 8-bit rounding)."""
    (result,) = pipe.denoise([z_hat], Tiling(**TILES, tile_batch_size=tile_batch_size))
    with torch.inference_mode():
        pixels = pipe.vae.decode(result.latent / pipe.scaling_factor).sample
    return result.latent, pixels


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_merged_lora_matches_unmerged(z_hat):
    pipe = fresh_pipe()
    without_lora, _ = reconstruct(pipe, z_hat)
    randomize_lora_b(pipe.unet, seed=1)
    randomize_lora_b(pipe.vae, seed=2)
    latent, pixels = reconstruct(pipe, z_hat)
    assert max_diff(latent, without_lora) > 100 * TOLERANCE  # the adapters do act: the comparison means something

    applied = optimize_for_inference(pipe, merge_lora=True, channels_last=False, sdpa=True)
    merged_latent, merged_pixels = reconstruct(pipe, z_hat)

    assert applied.merged_lora_layers == len(lora.lora_layers(pipe.unet)) + len(lora.lora_layers(pipe.vae)) > 0
    assert all(layer.merged for _, layer in lora.lora_layers(pipe.unet) + lora.lora_layers(pipe.vae))
    assert max_diff(merged_latent, latent) < TOLERANCE
    assert max_diff(merged_pixels, pixels) < TOLERANCE


def test_serving_switches_on_cpu():
    """What the worker and `tadm upscale` apply on a CPU: every adapter merged, SDPA, and NCHW kept (NHWC would
    cost the CPU group norm its precision, see CHANNELS_LAST_TOLERANCE)."""
    pipe = fresh_pipe()
    randomize_lora_b(pipe.unet, seed=4)
    applied = optimize_for_serving(pipe)
    assert applied.merged_lora_layers == len(lora.lora_layers(pipe.unet)) + len(lora.lora_layers(pipe.vae)) > 0
    assert all(layer.merged for _, layer in lora.lora_layers(pipe.unet) + lora.lora_layers(pipe.vae))
    assert applied.attention == "AttnProcessor2_0" and not applied.channels_last and applied.compiled == ()
    conv = pipe.unet.conv_in.get_base_layer() if hasattr(pipe.unet.conv_in, "get_base_layer") else pipe.unet.conv_in
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_merge_in_float32_rounds_each_weight_once():
    unet = copy.deepcopy(fresh_pipe().unet)
    randomize_lora_b(unet, seed=3)
    name, layer = next((n, m) for n, m in lora.lora_layers(unet) if isinstance(m.get_base_layer(), torch.nn.Linear))
    unet.to(torch.bfloat16)
    adapter = lora.UNET_ADAPTER
    base = layer.get_base_layer().weight.detach().float().clone()
    # The delta in float32 from the (exactly upcast) bf16 factors; peft's own bf16 merge would round it first.
    delta = layer.lora_B[adapter].weight.float() @ layer.lora_A[adapter].weight.float() * layer.scaling[adapter]
    expected = (base + delta).to(torch.bfloat16)

    merge_lora_in_float32(unet)

    merged = layer.get_base_layer().weight
    assert merged.dtype == torch.bfloat16, name
    assert float(delta.abs().max()) > 0
    assert torch.equal(merged, expected), name


def test_channels_last_matches_default(z_hat):
    pipe = fresh_pipe()
    latent, pixels = reconstruct(pipe, z_hat)
    optimize_for_inference(pipe, merge_lora=False, channels_last=True, sdpa=True)
    conv = pipe.unet.conv_in.get_base_layer() if hasattr(pipe.unet.conv_in, "get_base_layer") else pipe.unet.conv_in
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc_latent, nhwc_pixels = reconstruct(pipe, z_hat)
    assert max_diff(nhwc_latent, latent) < CHANNELS_LAST_TOLERANCE
    assert max_diff(nhwc_pixels, pixels) < CHANNELS_LAST_TOLERANCE


def test_classic_attention_matches_sdpa(z_hat):
    pipe = fresh_pipe()
    optimize_for_inference(pipe, merge_lora=False, channels_last=False, sdpa=True)
    latent, pixels = reconstruct(pipe, z_hat)
    applied = optimize_for_inference(pipe, merge_lora=False, channels_last=False, sdpa=False)
    assert applied.attention == "AttnProcessor"
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"AttnProcessor"}
    classic_latent, classic_pixels = reconstruct(pipe, z_hat)
    assert max_diff(classic_latent, latent) < TOLERANCE
    assert max_diff(classic_pixels, pixels) < TOLERANCE


def test_tile_batch_size_does_not_change_the_image(photo):
    pipe = fresh_pipe()
    thumbnail = pipe.downscale(photo)
    one = np.asarray(pipe.upscale(thumbnail, tiling=Tiling(**TILES, tile_batch_size=1)), dtype=np.int16)
    eight = np.asarray(pipe.upscale(thumbnail, tiling=Tiling(**TILES, tile_batch_size=8)), dtype=np.int16)
    # float32 sums in another order may tip a value across an 8-bit rounding boundary: at most one level.
    assert one.shape == (128, 128, 3)
    assert np.abs(one - eight).max() <= 1
    assert (one != eight).mean() < 0.001


def test_static_batch_step_keeps_every_call_full_and_results_unchanged(z_hat):
    pipe = fresh_pipe()
    shapes: list[int] = []

    def recording_step(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shapes.append(tiles.shape[0])
        return pipe.denoise_step(tiles)

    with torch.inference_mode():
        (plain,) = denoise_tiled([z_hat], pipe.denoise_step, Tiling(**TILES, tile_batch_size=4))
        (padded,) = denoise_tiled([z_hat], static_batch_step(recording_step, 4), Tiling(**TILES, tile_batch_size=4))
    assert len(plain.tiles) == 9 and shapes == [4, 4, 4]  # 9 tiles: the last batch was padded from 1
    assert max_diff(padded.latent, plain.latent) < TOLERANCE
    assert padded.timesteps == pytest.approx(plain.timesteps, abs=1e-3)


def test_static_batch_step_rejects_bad_sizes():
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        static_batch_step(lambda tiles: (tiles, tiles[:, 0, 0, 0]), 0)
    step = static_batch_step(lambda tiles: (tiles, tiles[:, 0, 0, 0]), 2)
    with pytest.raises(ValueError, match="larger than the static batch size 2"):
        step(torch.zeros(3, 4, 8, 8))


def load_script(name: str):
    """Import a script of scripts/ as a module (scripts/ is not a package), with scripts/ on the path while it
    loads, as when Python runs the script: it imports the modules beside it (bench_common, ...)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "scripts"))
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_gpu():
    return load_script("bench_gpu")


def test_bench_gpu_staged_reconstruction_equals_upscale(bench_gpu, photo):
    pipe = fresh_pipe()
    thumbnail = pipe.downscale(photo)
    clock = bench_gpu.StageClock(torch.device("cpu"))
    (image,), _ = bench_gpu.reconstruct(pipe, [thumbnail], clock, tiling=Tiling(**TILES, tile_batch_size=4),
                                        static_batch=True)
    expected = pipe.upscale(thumbnail, tiling=Tiling(**TILES, tile_batch_size=4))
    assert np.abs(np.asarray(image, np.int16) - np.asarray(expected, np.int16)).max() <= 1
    assert {"dfrm", "tpm", "unet", "scheduler", "denoise", "vae_decode"} <= set(clock.totals())
    assert clock.count("unet") == 3  # 9 tiles in static batches of 4


def test_bench_gpu_dry_run_writes_every_figure(bench_gpu, tmp_path, photo):
    out = tmp_path / "dry-run.json"
    bench_gpu.main(["--preset", "tiny", "--device", "cpu", "--sizes", "64x64", "--scales", "16,32", "--runs", "1",
                    "--unet-batches", "1", "--vae-tiles", "256", "--jobs", "2", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert doc["dry_run"] and not doc["partial"] and doc["skipped"] == []
    measured = {(r["config"], r["scale"], r["jobs"]) for r in doc["results"]}
    assert measured == {("baseline", 16, 1), ("baseline", 32, 1), ("optimized", 16, 1), ("optimized", 32, 1),
                        ("optimized", 16, 2)}
    for row in doc["results"]:
        assert set(row["stages_s"]) == set(bench_gpu.STAGES)
        assert row["seconds_median"] > 0 and row["megapixels_per_s"] > 0 and row["unet_tflop_per_run"] > 0
    baseline = next(r for r in doc["results"] if r["config"] == "baseline")
    assert baseline["tile_batch_size"] == 1 and baseline["optimizations"] is None
    check = doc["lora_merge_check"]
    assert check["z0_merged_vs_unmerged"] < TOLERANCE < check["z0_lora_effect"]
    assert doc["matmul_peak"]["tflops"] > 0 and doc["vae_tile_sweep"][0]["vae_tile_size"] == 256
    assert doc["summary"]["goals"] is None and all(row["speedup"] > 0 for row in doc["summary"]["per_size"])


def test_bench_upscale_reports_seconds_and_peak_memory(tmp_path, photo):
    out = tmp_path / "upscale.json"
    # 256x256: well above the 64x64 warm-up upscale, so the measured one needs memory the warm-up did not leave.
    load_script("bench_upscale").main(["--sizes", "256x256", "--runs", "2", "--threads", "1", "--json", str(out)])
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert row["size"] == [256, 256] and row["thumbnail"] == [16, 16] and len(row["seconds_runs"]) == 2
    assert (doc["tile_size"], doc["tile_stride"], doc["tile_batch_size"]) == (96, 64, 8)  # the tiny model's own
    assert row["seconds_median"] > 0 and row["memory"]["peak_mib"] > 0 and row["torch_threads"] == 1
    assert "top_ops" not in row  # profiling only when asked


def test_bench_upscale_top_ops_ranks_the_profiled_operators(tmp_path, photo, capsys):
    out = tmp_path / "upscale.json"
    load_script("bench_upscale").main(["--sizes", "128x128", "--runs", "1", "--threads", "1", "--top-ops", "3",
                                       "--json", str(out)])
    (row,) = json.loads(out.read_text())["results"]
    ops = row["top_ops"]["ops"]
    assert len(ops) == 3 and row["top_ops"]["profiled_seconds"] > 0
    assert [op["self_seconds"] for op in ops] == sorted((op["self_seconds"] for op in ops), reverse=True)
    assert all(op["name"].startswith("aten::") and op["calls"] >= 1 for op in ops)
    assert 0 < sum(op["share"] for op in ops) <= 1
    printed = capsys.readouterr().out
    assert "top operators, 128x128" in printed and ops[0]["name"] in printed


def test_bench_upscale_times_a_model_directory_as_served(tmp_path, photo):
    from model.pipeline import TADMPipeline

    saved = TADMPipeline.from_preset("tiny", scale=32, seed=3).save_pretrained(tmp_path / "m")
    out = tmp_path / "upscale.json"
    load_script("bench_upscale").main(["--model", str(saved), "--serving", "--sizes", "256x192", "--runs", "1",
                                       "--threads", "1", "--tile-stride", "40", "--attention-pool", "2",
                                       "--json", str(out)])
    doc = json.loads(out.read_text())
    assert (doc["tile_size"], doc["tile_stride"]) == (96, 40)  # the stride given, the model's tile size
    assert doc["attention_pool"] == doc["results"][0]["attention_pool"] == 2  # every preset's own is 1
    assert doc["model"] == str(saved) and doc["preset"] is None and doc["weights"] == "trained"
    assert doc["serving_optimisations"] is True and doc["results"][0]["thumbnail"] == [8, 6]
    assert doc["scale"] == 32  # the model's own, not --scale's default


def test_bench_compare_times_two_models_in_turns(tmp_path, photo):
    from model.pipeline import TADMPipeline

    compare = load_script("bench_compare")
    assert compare.round_order(3) == [(0, 0), (0, 1), (1, 1), (1, 0), (2, 0), (2, 1)]  # A first in even rounds
    assert compare.paired_ratio([1.0, 2.0, 4.0], [2.0, 2.0, 2.0]) == 1.0  # ratios 2, 1, 0.5: their median
    saved = TADMPipeline.from_preset("tiny", scale=16, seed=3).save_pretrained(tmp_path / "m")
    out = tmp_path / "compare.json"
    compare.main([str(saved), "preset:tiny", "--size", "128x96", "--rounds", "2", "--threads", "1",
                  "--serving", "b", "--json", str(out)])
    doc = json.loads(out.read_text())
    a, b = doc["models"]
    assert a["model"] == str(saved) and b["model"] == "preset:tiny" and a["model_id"] != b["model_id"]
    assert doc["serving_optimisations"] == "b" and (a["serving"], b["serving"]) == (False, True)
    assert a["thumbnail"] == b["thumbnail"] == [8, 6] and len(a["seconds_runs"]) == len(b["seconds_runs"]) == 2
    assert doc["b_over_a_paired_median"] == compare.paired_ratio(a["seconds_runs"], b["seconds_runs"]) > 0


def test_bench_compare_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_script("bench_compare").main([str(tmp_path), "preset:tiny"])
    assert "not a model directory" in capsys.readouterr().err


def test_bench_scripts_reject_bad_arguments(bench_gpu, capsys):
    with pytest.raises(SystemExit):
        bench_gpu.main(["--sizes", "2048by2048"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_gpu.main(["--device", "cpu", "--configs", "fastest"])
    assert "baseline,optimized,compiled" in capsys.readouterr().err


def test_bench_downscale_times_a_grown_g_e_beside_the_model(tmp_path, capsys, kodak_dir):  # it times a Kodak photo
    from model.pipeline import TADMPipeline

    bench = load_script("bench_downscale")
    saved = TADMPipeline.from_preset("tiny", scale=16, seed=3).save_pretrained(tmp_path / "m")
    channels, blocks = TADMPipeline.from_pretrained(saved).dfrm.encoder_shape
    out = tmp_path / "downscale.json"
    bench.main([str(saved), "--grow", f"{channels * 2}/{blocks + 1}", "--sizes", "128x96", "--rounds", "2",
                "--threads", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [r["g_e"] for r in rows] == [[channels, blocks], [channels * 2, blocks + 1]]
    assert rows[1]["parameters"] > rows[0]["parameters"] and rows[0]["over_as_is_paired_median"] == 1.0
    assert all(len(r["seconds_runs"]) == 2 and r["seconds_median"] > 0 for r in rows)
    with pytest.raises(SystemExit):  # G_e only grows
        bench.main([str(saved), "--grow", f"{channels // 2}/{blocks}", "--sizes", "64x64", "--rounds", "1"])
    assert "G_e can only grow" in capsys.readouterr().err
