"""scripts/train_remote.sh, training on a remote GPU host: `jobs FILE` runs a training per line side by side,
each continuing the shipped weights of its scale on time budgets, and packs its last stage's model (float16, the
files that differ from the shipped model) into pieces of at most PIECE_SIZE; `unpack` rebuilds the model for
scripts/ship_nano.sh.

The same script runs here on the CPU, with budgets of a second, the shipped weights and two small photos; the GPU
host's CUDA is the one thing this test does not reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from model.pipeline import TADMPipeline

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_remote.sh"
SHIPPED = REPO / "model" / "weights" / "nano-16x"


def script(*args: str, **env: str) -> subprocess.CompletedProcess:
    # python3 on PATH is this interpreter, as on the GPU host (whose python3 holds torch)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, "PATH": path, **env},
                          capture_output=True, text=True, timeout=600, check=False)


def test_jobs_pack_float16_models_that_unpack_for_shipping(tmp_path, kodak_dir):
    remote_dir, results, runs = tmp_path / "remote", tmp_path / "results", tmp_path / "runs"
    (remote_dir / "photos" / "images").mkdir(parents=True)
    runs.mkdir()
    with Image.open(kodak_dir / "kodak__kodim23.png") as img:  # training photos for a test, not for a model
        img.convert("RGB").crop((256, 128, 384, 256)).save(remote_dir / "photos" / "images" / "a.webp", quality=80)
        img.convert("RGB").crop((0, 0, 128, 128)).save(remote_dir / "photos" / "images" / "b.webp", quality=80)
    jobs = remote_dir / "jobs"
    jobs.write_text("# label and settings\nt16 SCALE=16 BATCH=1 CROP=64 THREADS=1 WORKERS=0 EMA_DECAY=0.9 "
                    "STAGE1_SECONDS=1 STAGE2_SECONDS=1 STAGE3_SECONDS=1\n")
    env = {"REMOTE_DIR": str(remote_dir), "RESULTS": str(results), "RUNS_DIR": str(runs), "PIECE_SIZE": "1m"}
    result = script("jobs", str(jobs), **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--max-seconds 1 reached" in (runs / "run-t16" / "train.log").read_text()
    pieces = sorted(results.glob("t16.tar.gz.part-*"))
    assert len(pieces) > 1 and all(p.stat().st_size <= 2**20 for p in pieces)  # the float16 model, in 1 MiB pieces
    assert script("jobs", str(jobs), **env).returncode != 0  # a job never trains over an existing run

    unpacked = tmp_path / "unpacked"
    result = script("unpack", str(results), "t16", str(unpacked))
    assert result.returncode == 0, result.stderr
    assert f"MODEL={unpacked} SCALE=16 scripts/ship_nano.sh" in result.stdout
    history = json.loads((unpacked / "training.json").read_text())
    ours = history["stages"][-3:]
    assert [e["stage"] for e in ours] == ["stage1", "stage2", "stage3"]
    # each stage ended at its budget, from the shipped weights, with the batch and crop asked for
    assert all(e["max_seconds"] == 1.0 and e["iterations"] < e["planned_iterations"] for e in ours)
    assert all((e["batch_size"], e["crop_size"], e["ema_decay"]) == (1, 64, 0.9) for e in ours)
    shipped = json.loads((SHIPPED / "training.json").read_text())
    assert history["stages"][: len(shipped["stages"])] == shipped["stages"]
    # seeded by the steps already trained: a continuation draws crops the model has not drawn in that order
    assert all(e["seed"] == sum(shipped["cumulative_steps"].values()) > 0 for e in ours)
    # the files the pieces left out are the shipped model's; the trained ones came back as float16
    empty_prompt = "empty_prompt.safetensors"
    assert (unpacked / empty_prompt).read_bytes() == (SHIPPED / empty_prompt).read_bytes()
    dfrm = load_file(str(unpacked / "dfrm" / "diffusion_pytorch_model.safetensors"))
    assert {t.dtype for t in dfrm.values() if t.is_floating_point()} == {torch.float16}
    assert TADMPipeline.from_pretrained(unpacked).scale == 16
    assert (unpacked.parent / "unpacked.logs" / "train.log").is_file()
    assert script("unpack", str(results), "t16", str(unpacked)).returncode == 2  # never over an existing model
