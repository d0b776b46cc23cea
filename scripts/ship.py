"""Ship a trained nano model into the repository, and record what it measured.

    python scripts/ship.py weights RUN/stage3/model --scale 16     # -> model/weights/nano-16x/
    python scripts/ship.py evaluation model/weights/nano-16x RESULTS.csv [--set NAME] [--note TEXT]

``weights`` writes the model directory with every tensor stored as float16: half the bytes in git (the two nano
models fit the 40 MB limit on shipped weights), loaded back as float32. The values are rounded here, once, so what
is evaluated after shipping is exactly what serves. The folder's model card (README.md) and other documents stay;
the previous weights are replaced (git keeps them). It refuses a model over the size limit. The paths its
training.json records are written relative to the repository or the home directory: what ships in git must not
name one developer's directories.

``evaluation`` appends the means of a ``tadm eval`` CSV (per method: PSNR-Y, SSIM-Y, MS-SSIM-Y, bpp) to the shipped
``training.json``, stamped with the cumulative steps per stage: the figures the card and ``/v1/info`` quote.

Repository workflow, not library: the trainer writes training.json's stages (:mod:`model.training.history`);
this script is what adds its evaluations and makes its paths portable.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: the model package is the repository's

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from model.backbones import SHIPPED_WEIGHTS_DIR  # noqa: E402
from model.pipeline import TADMPipeline  # noqa: E402
from model.thumbnail import SUPPORTED_SCALES  # noqa: E402
from model.training import history  # noqa: E402

MAX_SHIPPED_BYTES = 40 * 1024 * 1024
KEPT = {"README.md", "evaluation"}  # the model card and its figures are not part of the weights
SCORES = ("psnr_y", "ssim_y", "ms_ssim_y", "thumbnail_psnr", "bpp")


class ShipError(ValueError):
    pass


def round_to_half(pipe: TADMPipeline) -> None:
    """Round every floating tensor of the model to float16's values (kept as float32)."""
    with torch.no_grad():
        for module in pipe.modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())
    pipe.empty_prompt = pipe.empty_prompt.half().float()


def store_as_half(directory: Path) -> None:
    for path in directory.rglob("*.safetensors"):
        tensors = load_file(str(path))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(path))


def with_portable_paths(record: dict, home: Path, repository: Path) -> dict:
    """``record`` (a training history) with the paths it holds (data folders, backbones) written so that they mean
    the same on another machine: under ``repository`` relative to it, under ``home`` as ``~/...``."""

    def portable(value):
        if isinstance(value, dict):
            return {key: portable(item) for key, item in value.items()}
        if isinstance(value, list):
            return [portable(item) for item in value]
        if isinstance(value, str) and value.startswith("/"):
            path = Path(value)
            for root, shown in ((repository, None), (home, "~")):
                if path == root or root in path.parents:
                    relative = path.relative_to(root).as_posix()
                    return relative if shown is None else f"{shown}/{relative}"
        return value

    return portable(record)


def with_evaluation(record: dict, measured: dict) -> dict:
    """``record`` (a training history) plus one measurement, stamped with the cumulative steps it was taken at."""
    stamped = {**measured, "cumulative_steps": dict(history.with_cumulative(record)["cumulative_steps"])}
    return {**record, "evaluations": [*record["evaluations"], stamped]}


def ship_weights(model_dir: Path, scale: int, dest: Path | None = None, preset: str = "nano") -> Path:
    dest = dest or SHIPPED_WEIGHTS_DIR / f"{preset}-{scale}x"
    pipe = TADMPipeline.from_pretrained(model_dir)
    if pipe.config["preset"] != preset or pipe.scale != scale:
        raise ShipError(f"{model_dir} is a {pipe.config['preset']} {pipe.scale}x model, not {preset} {scale}x")
    round_to_half(pipe)
    staging = dest.with_name(dest.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging)
    store_as_half(staging)
    history.write(staging, with_portable_paths(history.read(model_dir), Path.home(), REPO))
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    if size > MAX_SHIPPED_BYTES:
        shutil.rmtree(staging)
        raise ShipError(f"the weights take {size / 2**20:.1f} MiB, over the {MAX_SHIPPED_BYTES / 2**20:.0f} MiB limit")
    if TADMPipeline.from_pretrained(staging).model_id != pipe.model_id:  # float16 on disk loads back exactly
        shutil.rmtree(staging)
        raise ShipError("the float16 weights did not load back to the rounded model")
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.name not in KEPT:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for new in staging.iterdir():
        shutil.move(str(new), dest / new.name)
    staging.rmdir()
    return dest


def method_means(results_csv: Path) -> dict[str, dict[str, float]]:
    """Per method of a ``tadm eval`` CSV: the image count and the mean of each score."""
    groups: dict[str, list[dict]] = {}
    with results_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            groups.setdefault(row["method"], []).append(row)
    means = {}
    for method, rows in groups.items():
        entry: dict[str, float] = {"images": len(rows)}
        for score in SCORES:
            values = [float(r[score]) for r in rows if r.get(score)]
            if len(values) == len(rows):
                entry[score] = round(sum(values) / len(values), 4)
        means[method] = entry
    return means


def set_name_of(results_csv: Path) -> str:
    """The evaluated set's name as the cards quote it, ``<folder>-<images>`` (``kodak-24``), from the title that
    ``tadm eval`` writes beside the CSV (``kodak, 24 images, 16x``); the CSV's folder name where there is none."""
    beside = results_csv.with_suffix(".json")
    try:
        folder, images = json.loads(beside.read_text())["title"].split(", ")[:2]
        return f"{folder}-{int(images.split()[0])}"
    except (OSError, ValueError, KeyError, IndexError):
        return results_csv.parent.name


def record_evaluation(dest: Path, results_csv: Path, note: str = "", set_name: str | None = None) -> dict:
    pipe = TADMPipeline.from_pretrained(dest)
    measured = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model_id": pipe.model_id,
                "scale": pipe.scale, "set": set_name or set_name_of(results_csv), "methods": method_means(results_csv)}
    if note:
        measured["note"] = note
    updated = with_evaluation(history.read(dest), measured)
    history.write(dest, updated)
    return updated["evaluations"][-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/ship.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("weights", help="copy a nano model directory into model/weights/nano-SCALEx (float16)")
    w.add_argument("model_dir", type=Path)
    w.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, required=True)
    w.add_argument("--dest", type=Path, help="default: model/weights/nano-SCALEx")
    e = sub.add_parser("evaluation", help="append a tadm eval CSV's means to the shipped training.json")
    e.add_argument("dest", type=Path)
    e.add_argument("results_csv", type=Path)
    e.add_argument("--note", default="")
    e.add_argument("--set", dest="set_name",
                   help="the evaluation set's name (default: from the title of tadm eval's JSON beside the CSV, "
                        "e.g. kodak-24; else the CSV's folder name)")
    args = parser.parse_args(argv)
    try:
        if args.command == "weights":
            print(f"shipped: {ship_weights(args.model_dir, args.scale, args.dest)}")
        else:
            print(json.dumps(record_evaluation(args.dest, args.results_csv, args.note, args.set_name), indent=2))
    except (ShipError, FileNotFoundError) as exc:
        print(f"ship: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
