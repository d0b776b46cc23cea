"""scripts/device_train_nano.sh, the one call a lent GPU machine gets (issue 12): `train` continues the shipped
16x weights through stages 1-3 on time budgets and packs the stage-1 and stage-3 models into pieces that a device
call can return; `unpack` puts them back together for scripts/ship_nano.sh.

No GPU here: the same script runs on CPU with budgets of a second, the shipped weights and two small photos (the
device's CUDA is the one boundary this test cannot reach). Pieces are checked against the 16 MiB a device call
returns per file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from model.pipeline import TADMPipeline

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "device_train_nano.sh"


def script(*args: str, **env: str) -> subprocess.CompletedProcess:
    # python3 on PATH is this interpreter, as on the device (whose python3 holds torch)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, "PATH": path, **env},
                          capture_output=True, text=True, timeout=600, check=False)


def test_train_packs_stage_models_that_unpack_for_shipping(tmp_path, kodak_dir):
    device_dir, out, run = tmp_path / "device", tmp_path / "out", tmp_path / "run"
    (device_dir / "photos" / "images").mkdir(parents=True)
    out.mkdir()
    with Image.open(kodak_dir / "kodak__kodim23.png") as img:  # training photos for a test, not for a model
        img.convert("RGB").crop((256, 128, 384, 256)).save(device_dir / "photos" / "images" / "a.jpg", quality=85)
        img.convert("RGB").crop((0, 0, 128, 128)).save(device_dir / "photos" / "images" / "b.jpg", quality=85)
    budgets = {"STAGE1_SECONDS": "1", "STAGE2_SECONDS": "1", "STAGE3_SECONDS": "1"}
    result = script("train", DEVICE_DIR=str(device_dir), OUT=str(out), RUN=str(run), BATCH="1", CROP="64",
                    THREADS="1", WORKERS="0", EMA_DECAY="0.9", **budgets)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--max-seconds 1 reached" in (out / "train.log").read_text()
    pieces = sorted(out.glob("run.tar.part-*"))
    assert pieces and all(p.stat().st_size <= 15 * 2**20 for p in pieces)

    assert script("train", DEVICE_DIR=str(device_dir), OUT=str(out), RUN=str(run)).returncode == 2  # not over a run
    unpacked = tmp_path / "unpacked"
    result = script("unpack", str(out), str(unpacked))
    assert result.returncode == 0, result.stderr
    assert f"scripts/ship_nano.sh {unpacked}" in result.stdout
    history = json.loads((unpacked / "stage3" / "model" / "training.json").read_text())
    ours = history["stages"][-3:]
    assert [e["stage"] for e in ours] == ["stage1", "stage2", "stage3"]
    # each stage ended at its budget, from the shipped weights, with the batch and crop asked for
    assert all(e["max_seconds"] == 1.0 and e["iterations"] < e["planned_iterations"] for e in ours)
    assert all((e["batch_size"], e["crop_size"]) == (1, 64) for e in ours)
    assert all(e["ema_decay"] == 0.9 for e in ours)  # train_nano.sh passes EMA_DECAY to every stage
    shipped = json.loads((REPO / "model" / "weights" / "nano-16x" / "training.json").read_text())
    assert history["stages"][: len(shipped["stages"])] == shipped["stages"]
    assert (unpacked / "stage1" / "model" / "tadm.json").is_file()
    assert TADMPipeline.from_pretrained(unpacked / "stage3" / "model").scale == 16
    assert script("unpack", str(out), str(unpacked)).returncode == 2  # never over an existing run
