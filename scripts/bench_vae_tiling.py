#!/usr/bin/env python
"""VAE tiling benchmark: how closely the banded VAE (model.vae_tiling) and diffusers' tiling match one pass, and
what the banded VAE costs in time and memory against one pass.

    nice scripts/bench_vae_tiling.py --image PHOTO [--image PHOTO ...] --threads 1 --json out.json
    scripts/bench_vae_tiling.py --model tiny --agreement-size 256x256 --cost-sizes 256x192 --rounds 1   # smoke run

(a) Agreement, at ``--agreement-size`` (each photograph scaled to cover it and centre-cropped), for the banded VAE
and for diffusers' tiling (512-px tiles, what the pipeline used before): the encoder's latent (max abs difference
and PSNR over the one-pass latent's range) and the decoder's image decoded from the one-pass latent (max abs
difference in 8-bit levels and PSNR-Y), each against one pass; and the autoencoder alone (encode then decode in
the same mode) against the photograph, PSNR-Y.

(b) Cost, at each of ``--cost-sizes``: the peak memory of one encode and one decode, one pass against the banded VAE (and
diffusers' tiling, for reference), each in a fresh Python process so that its peak is its own: the resident
set's high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) during the call above the resident set
before it, after a 64x64 call of the same kind has loaded the libraries' code. Then, at the last size, the
seconds of one pass and the banded VAE called in turns in one process for ``--rounds`` rounds (on a shared host, load changes between
processes more than within a round): the medians and the median per-round ratio.

``--probe-preset sd21-base`` adds the one-pass and banded peaks of that preset's VAE (random weights, LoRA) at
``--probe-size``: the per-pixel figure ``model.vae_budget`` derives its CUDA default from.

``--model`` is a model directory (default: the shipped 16x nano model) or a preset name (random weights).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_common import DEFAULT_IMAGE, REPO, cover_crop, parse_size, parse_sizes, strip_json_flag, write_json
from bench_upscale import cpu_name, read_status_kib, reset_peak_rss

MODES = ("one_pass", "banded", "diffusers")
DIFFUSERS_TILE = 512  # the pipeline's diffusers tiles before the banded VAE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "model" / "weights" / "nano-16x"),
                        help="model directory, or a preset name for random weights (default: the shipped nano 16x)")
    parser.add_argument("--image", type=Path, action="append", help="photograph(s) (repeatable; default kodim01)")
    parser.add_argument("--agreement-size", type=parse_size, default=(2048, 2048))
    parser.add_argument("--cost-sizes", type=parse_sizes, default=[(2048, 2048), (3840, 2160)],
                        help="sizes whose peak memory is measured; the last is also timed (default 2048x2048,3840x2160)")
    parser.add_argument("--cost-modes", default="one_pass,banded,diffusers", help="modes timed in (b)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one pass and banded in turns (default 3)")
    parser.add_argument("--band-pixels", type=int, default=512 * 512,
                        help="the banded VAE's band in pixels (default 512², the pipeline's)")
    parser.add_argument("--probe-preset", help="also measure this preset's VAE one pass and banded (e.g. sd21-base)")
    parser.add_argument("--probe-size", type=parse_size, default=(512, 512))
    parser.add_argument("--probe-band-pixels", type=int, default=64 * 512, help="the probe's band (default 64 rows)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measurement, as JSON on stdout
    return parser


# -- the VAE in each mode --------------------------------------------------------------------------------
def load_vae(model: str):
    """(vae, latent factor) of a model directory or a preset (random weights; LoRA-B made non-zero so that the
    decoder's adapter takes part, as in a trained model)."""
    import torch

    from model import TADMPipeline, backbones, lora

    if Path(model).is_dir():
        pipe = TADMPipeline.from_pretrained(model)
        return pipe.vae, pipe.latent_factor
    preset = backbones.get_preset(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(**preset.vae)
        lora.attach_vae_lora(vae, preset.vae_lora_rank)
        for name, param in vae.named_parameters():
            if "lora_B" in name:
                param.data.normal_(0, 0.02)
    return vae.eval().requires_grad_(False), preset.latent_factor


def encode(vae, factor: int, x, mode: str, band_pixels: int):
    from model import vae_tiling

    vae.disable_tiling()
    if mode == "banded":
        return vae_tiling.encode(vae, x, band_pixels).chunk(2, dim=1)[0]
    if mode == "diffusers":
        configure_diffusers_tiling(vae, factor)
    try:
        return vae.encode(x).latent_dist.mode()
    finally:
        vae.disable_tiling()


def decode(vae, factor: int, z, mode: str, band_pixels: int):
    from model import vae_tiling

    vae.disable_tiling()
    if mode == "banded":
        return vae_tiling.decode(vae, z, band_pixels)
    if mode == "diffusers":
        configure_diffusers_tiling(vae, factor)
    try:
        return vae.decode(z).sample
    finally:
        vae.disable_tiling()


def configure_diffusers_tiling(vae, factor: int) -> None:
    vae.enable_tiling()
    vae.tile_sample_min_size = DIFFUSERS_TILE
    vae.tile_latent_min_size = DIFFUSERS_TILE // factor


def photo_tensor(image: Path, size: tuple[int, int]):
    from PIL import Image

    from model.pipeline import pil_to_tensor

    with Image.open(image) as photo:
        return pil_to_tensor(cover_crop(photo.convert("RGB"), size))


# -- children --------------------------------------------------------------------------------------------
def agreement(args: argparse.Namespace, image: Path) -> dict:
    """(a) for one photograph, in this process."""
    import torch

    from model.evaluation.metrics import psnr, rgb_to_y
    from model.pipeline import tensor_to_uint8

    vae, factor = load_vae(args.model)
    x = photo_tensor(image, args.agreement_size)
    with torch.inference_mode():
        latents = {m: encode(vae, factor, x, m, args.band_pixels) for m in MODES}
        reference = latents["one_pass"]
        spread = float(reference.max() - reference.min())
        from_reference = {m: decode(vae, factor, reference, m, args.band_pixels).clamp(-1, 1) for m in MODES}
        own = {m: from_reference[m] if m == "one_pass" else
               decode(vae, factor, latents[m], m, args.band_pixels).clamp(-1, 1) for m in MODES}
    photo_y = rgb_to_y(tensor_to_uint8(x))
    one_y = rgb_to_y(tensor_to_uint8(from_reference["one_pass"]))
    result: dict = {"image": image_label(image), "size": list(args.agreement_size),
                    "latent_range": spread, "modes": {}}
    for m in MODES:
        dz = (latents[m] - reference).abs()
        dx = (from_reference[m] - from_reference["one_pass"]).abs() * 127.5  # [-1,1] -> 8-bit levels
        result["modes"][m] = {
            "encoder_latent_max_abs": float(dz.max()),
            "encoder_latent_psnr_db": psnr_db(float(dz.square().mean()), spread),
            "decoder_image_max_abs_levels": float(dx.max()),
            "decoder_image_psnr_db": psnr_db(float(dx.square().mean()), 255.0),
            "decoder_image_psnr_y_db": finite(psnr(one_y, rgb_to_y(tensor_to_uint8(from_reference[m])))),
            "autoencoder_psnr_y_db": psnr(photo_y, rgb_to_y(tensor_to_uint8(own[m]))),
        }
    return result


def cost(args: argparse.Namespace, part: str, mode: str, model: str, size: tuple[int, int], image: Path,
         band_pixels: int) -> dict:
    """(b) peak memory and the time of that first call, for one part (encoder/decoder) and mode, in this process."""
    import torch

    vae, factor = load_vae(model)
    call, warm = prepared_call(vae, factor, part, mode, size, image, band_pixels)
    with torch.inference_mode():
        call(warm)
        rss_before = read_status_kib("VmRSS")
        reset = reset_peak_rss()
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
        peak = read_status_kib("VmHWM")
    peak_mib = (peak - rss_before) / 1024 if reset and peak is not None and rss_before else None
    return {"part": part, "mode": mode, "size": list(size), "model": model_label(model), "band_pixels": band_pixels,
            "peak_mib": peak_mib, "peak_bytes_per_pixel": peak_mib * 2**20 / (size[0] * size[1]) if peak_mib else None,
            "first_call_s": seconds, "torch_threads": torch.get_num_threads()}


def timing(args: argparse.Namespace, part: str) -> dict:
    """(b) seconds of one pass and the banded VAE, called in turns for ``--rounds`` rounds in this process, so
    that both see the same load: the median of each and of the per-round ratio."""
    import torch

    vae, factor = load_vae(args.model)
    calls = {m: prepared_call(vae, factor, part, m, args.cost_sizes[-1], args.image[0], args.band_pixels)
             for m in ("one_pass", "banded")}
    runs: dict[str, list[float]] = {m: [] for m in calls}
    with torch.inference_mode():
        for call, warm in calls.values():
            call(warm)
        for _ in range(args.rounds):
            for mode, (call, _) in calls.items():
                start = time.perf_counter()
                call()
                runs[mode].append(time.perf_counter() - start)
    ratios = [b / a for a, b in zip(runs["one_pass"], runs["banded"], strict=True)]
    return {"part": part, "size": list(args.cost_sizes[-1]), "rounds": args.rounds, "seconds_runs": runs,
            "seconds_median": {m: statistics.median(r) for m, r in runs.items()},
            "banded_over_one_pass_median": statistics.median(ratios), "torch_threads": torch.get_num_threads()}


def prepared_call(vae, factor: int, part: str, mode: str, size: tuple[int, int], image: Path, band_pixels: int):
    """(call, small input): ``call()`` encodes the photograph at ``size`` or decodes its one-pass latent in
    ``mode``; ``call(small)`` does the same on a 64x64 input, to load the libraries' code first."""
    import torch

    x = photo_tensor(image, size)
    small = photo_tensor(image, (64, 64))
    with torch.inference_mode():
        if part == "encoder":
            return (lambda inp=x: encode(vae, factor, inp, mode, band_pixels)), small
        z = encode(vae, factor, x, "banded", band_pixels)
        warm = encode(vae, factor, small, "one_pass", band_pixels)
    return (lambda inp=z: decode(vae, factor, inp, mode, band_pixels)), warm


def finite(value: float) -> float | None:
    """JSON has no infinity: identical images give None."""
    return value if math.isfinite(value) else None


def psnr_db(mse: float, peak: float) -> float | None:
    return None if mse == 0 else 10 * math.log10(peak * peak / mse)


def image_label(image: Path) -> str:
    """The photograph's name without the directories above its package's tree."""
    return "/".join(image.parts[-4:])


def model_label(model: str) -> str:
    path = Path(model)
    return str(path.resolve().relative_to(REPO)) if path.is_dir() and path.resolve().is_relative_to(REPO) else model


# -- orchestration ---------------------------------------------------------------------------------------
def run_child(argv: list[str], child: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", child]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_vae_tiling: the measurement {child} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kind, *rest = args.child.split(":")
    if kind == "agreement":
        out = agreement(args, args.image[int(rest[0])])
    elif kind == "timing":
        out = timing(args, rest[0])
    else:  # cost:part:mode:size index, or -1 for the probe
        part, mode, index = rest[0], rest[1], int(rest[2])
        if index < 0:
            out = cost(args, part, mode, args.probe_preset, args.probe_size, args.image[0], args.probe_band_pixels)
        else:
            out = cost(args, part, mode, args.model, args.cost_sizes[index], args.image[0], args.band_pixels)
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    sub = strip_json_flag(argv) + ([] if args.image else ["--image", str(DEFAULT_IMAGE)])
    args.image = args.image or [DEFAULT_IMAGE]
    for image in args.image:
        if not image.is_file():
            parser.error(f"--image {image} does not exist")
    if args.child:
        child_main(args)
        return
    document: dict = {"agreement": [], "cost": [], "timing": [], "probe": []}
    for index in range(len(args.image)):
        row = run_child(sub, f"agreement:{index}")
        document["agreement"].append(row)
        print(f"(a) {row['image']} {row['size'][0]}x{row['size'][1]}, against one pass:")
        for mode, m in row["modes"].items():
            print(f"    {mode:>9}: latent max |d| {m['encoder_latent_max_abs']:.2e} ({fmt_db(m['encoder_latent_psnr_db'])}),"
                  f" decoded max |d| {m['decoder_image_max_abs_levels']:.2e} levels"
                  f" ({fmt_db(m['decoder_image_psnr_db'])}); autoencoder PSNR-Y {m['autoencoder_psnr_y_db']:.2f} dB")
    modes = [m for m in args.cost_modes.split(",") if m]
    for part in ("encoder", "decoder"):
        for index, mode in ((i, m) for i in range(len(args.cost_sizes)) for m in modes):
            row = run_child(sub, f"cost:{part}:{mode}:{index}")
            document["cost"].append(row)
            print(f"(b) {part} {mode:>9} {row['size'][0]}x{row['size'][1]}: peak +{row['peak_mib']:.0f} MiB"
                  f" ({row['peak_bytes_per_pixel']:.0f} B/px), first call {row['first_call_s']:.2f} s")
        if args.rounds:
            row = run_child(sub, f"timing:{part}")
            document["timing"].append(row)
            med = row["seconds_median"]
            print(f"(b) {part} in turns, {row['rounds']} rounds: one pass {med['one_pass']:.2f} s, banded"
                  f" {med['banded']:.2f} s (banded / one pass, median of rounds: {row['banded_over_one_pass_median']:.2f})")
    if args.probe_preset:
        for part in ("encoder", "decoder"):
            for mode in ("one_pass", "banded"):
                row = run_child(sub, f"cost:{part}:{mode}:-1")
                document["probe"].append(row)
                print(f"(probe) {row['model']} {part} {mode:>9} {row['size'][0]}x{row['size'][1]}:"
                      f" peak +{row['peak_mib']:.0f} MiB ({row['peak_bytes_per_pixel']:.0f} B/px)")
    labels = {str(image): image_label(image) for image in args.image}
    document = {
        "command": " ".join(["scripts/bench_vae_tiling.py", *(labels.get(a, a) for a in argv)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": {"cpu": cpu_name(), "python": sys.version.split()[0], "threads": args.threads},
        "band_pixels": args.band_pixels, "diffusers_tile": DIFFUSERS_TILE, **document,
    }
    if args.json:
        write_json(args.json, document)


def fmt_db(value: float | None) -> str:
    return "identical" if value is None else f"{value:.1f} dB"


if __name__ == "__main__":
    main()
