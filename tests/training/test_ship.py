"""Shipping a trained model into the repository (scripts/ship.py): float16 on disk, loaded back exactly, the
model card kept, and the evaluation recorded in training.json with the cumulative steps it was measured at."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.pipeline import TADMPipeline
from model.training import history
from model.training.trainer import train

from .conftest import small_run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ship.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("ship", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ship = _load_script()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, photo_folder):
    return train(small_run("stage1", tmp_path_factory.mktemp("run"), photo_folder, preset="tiny", iterations=2))


def test_weights_ship_as_float16_and_load_back_as_the_rounded_model(trained, tmp_path):
    dest = tmp_path / "tiny-16x"
    dest.mkdir()
    (dest / "README.md").write_text("model card")
    (dest / "stale.safetensors").write_bytes(b"old weights")
    ship.ship_weights(trained, 16, dest, preset="tiny")

    assert (dest / "README.md").read_text() == "model card" and not (dest / "stale.safetensors").exists()
    stored = load_file(str(dest / "dfrm" / "diffusion_pytorch_model.safetensors"))
    assert {t.dtype for t in stored.values()} == {torch.float16}
    shipped = TADMPipeline.from_pretrained(dest)
    original = TADMPipeline.from_pretrained(trained)
    assert shipped.dfrm.dtype == torch.float32
    for name, value in original.dfrm.state_dict().items():
        assert torch.equal(shipped.dfrm.state_dict()[name], value.half().float())
    assert shipped.model_id != original.model_id  # rounding changed the weights, and the id says so
    assert history.read(dest)["cumulative_steps"] == {"stage1": 2}


def test_shipped_history_names_no_local_directories(tmp_path):
    home, repository = tmp_path / "home" / "dev", tmp_path / "src" / "tadm"
    recorded = {"stages": [{"stage": "stage1", "iterations": 5, "data": [str(home / ".cache/photos"), "/srv/photos"],
                            "backbone": str(repository / "model/weights/nano-16x")}],
                "cumulative_steps": {}, "evaluations": [{"note": "trained in " + str(home)}]}
    portable = ship.with_portable_paths(recorded, home, repository)
    assert portable["stages"][0]["data"] == ["~/.cache/photos", "/srv/photos"]  # elsewhere: kept as it is
    assert portable["stages"][0]["backbone"] == "model/weights/nano-16x"
    assert portable["evaluations"][0]["note"] == "trained in " + str(home)  # prose is not a path


def test_a_model_over_the_limit_or_of_another_kind_is_refused(trained, tmp_path, monkeypatch):
    with pytest.raises(ship.ShipError, match="not nano 16x"):
        ship.ship_weights(trained, 16, tmp_path / "a")
    monkeypatch.setattr(ship, "MAX_SHIPPED_BYTES", 1000)
    with pytest.raises(ship.ShipError, match="over the"):
        ship.ship_weights(trained, 16, tmp_path / "b", preset="tiny")
    assert not (tmp_path / "b").exists()


def test_the_evaluation_is_recorded_with_the_steps_it_was_measured_at(trained, tmp_path):
    dest = ship.ship_weights(trained, 16, tmp_path / "tiny-16x", preset="tiny")
    results = tmp_path / "kodak" / "results-16x.csv"
    results.parent.mkdir()
    with results.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "method", "scale", "bytes", "bpp", "psnr_y", "ssim_y", "ms_ssim_y", "lpips",
                         "thumbnail_psnr"])
        writer.writerow(["a.png", "tadm-nano", 16, 100, 0.1, 24.0, 0.6, 0.8, "", 30.0])
        writer.writerow(["b.png", "tadm-nano", 16, 100, 0.3, 22.0, 0.4, 0.6, "", 34.0])
        writer.writerow(["a.png", "bicubic", 16, 90, 0.09, 23.0, 0.5, 0.7, "", ""])
    assert ship.main(["evaluation", str(dest), str(results), "--note", "first run"]) == 0
    (record,) = history.read(dest)["evaluations"]
    assert record["methods"]["tadm-nano"] == {"images": 2, "psnr_y": 23.0, "ssim_y": 0.5, "ms_ssim_y": 0.7,
                                              "thumbnail_psnr": 32.0, "bpp": 0.2}
    bicubic = record["methods"]["bicubic"]
    assert bicubic["psnr_y"] == 23.0 and "lpips" not in bicubic and "thumbnail_psnr" not in bicubic
    assert record["cumulative_steps"] == {"stage1": 2} and record["set"] == "kodak" and record["note"] == "first run"
    assert record["model_id"] == TADMPipeline.from_pretrained(dest).model_id


def test_the_set_is_named_from_the_title_tadm_eval_wrote_beside_the_csv(tmp_path):
    results = tmp_path / "eval-out" / "results-16x.csv"
    results.parent.mkdir()
    results.write_text("image,method\n")
    assert ship.set_name_of(results) == "eval-out"  # no title beside it: the folder
    results.with_suffix(".json").write_text(json.dumps({"title": "kodak, 24 images, 16x"}))
    assert ship.set_name_of(results) == "kodak-24"
    results.with_suffix(".json").write_text(json.dumps({"title": "a title of another shape"}))
    assert ship.set_name_of(results) == "eval-out"
