"""``training.json``: how a model directory came to be, kept across every session that trained it.

    {"stages": [entry, ...], "cumulative_steps": {"stage0": N, ...}, "evaluations": [record, ...]}

* ``stages``: one entry per stage run, oldest first, as the trainer wrote it (steps, rate, batch, crop, wall
  time, finish time, the model id it saved). A model trained over several sessions keeps every segment: each
  session's stage runs add entries, they never replace earlier ones.
* ``cumulative_steps``: the optimiser steps each stage has had in all, summed over ``stages``.
* ``evaluations``: what the model measured at points of its training (e.g. Kodak-24 against bicubic), each
  with the model id and cumulative steps it was measured at; carried forward from the start model.

Model directories written before this format hold a bare list of stage entries; it is read as ``stages``.
"""

from __future__ import annotations

import json
from pathlib import Path

HISTORY_NAME = "training.json"


def empty() -> dict:
    return {"stages": [], "cumulative_steps": {}, "evaluations": []}


def read(model_dir: str | Path) -> dict:
    """The directory's history; an empty one when it has no ``training.json``."""
    path = Path(model_dir) / HISTORY_NAME
    if not path.is_file():
        return empty()
    data = json.loads(path.read_text())
    if isinstance(data, list):  # the first format: the stage entries alone
        return with_cumulative({**empty(), "stages": data})
    return with_cumulative({**empty(), **data})


def write(model_dir: str | Path, history: dict) -> Path:
    path = Path(model_dir) / HISTORY_NAME
    path.write_text(json.dumps(with_cumulative(history), indent=2) + "\n")
    return path


def with_cumulative(history: dict) -> dict:
    totals: dict[str, int] = {}
    for entry in history["stages"]:
        totals[entry["stage"]] = totals.get(entry["stage"], 0) + int(entry["iterations"])
    return {**history, "cumulative_steps": totals}


def with_stage(history: dict, entry: dict) -> dict:
    """``history`` plus one finished stage run."""
    return with_cumulative({**history, "stages": [*history["stages"], entry]})


def with_backbone(history: dict, backbone: dict) -> dict:
    """``history`` of a model whose VAE and UNet were replaced by another model's (``tadm train --backbone``): the
    backbone's stage-0 segments replace the model's own, since they are what trained the weights it now has."""
    own = [e for e in history["stages"] if e["stage"] != "stage0"]
    adopted = [e for e in backbone["stages"] if e["stage"] == "stage0"]
    return with_cumulative({**history, "stages": adopted + own})


def with_evaluation(history: dict, record: dict) -> dict:
    """``history`` plus one measurement, stamped with the cumulative steps it was taken at."""
    stamped = {**record, "cumulative_steps": dict(with_cumulative(history)["cumulative_steps"])}
    return {**history, "evaluations": [*history["evaluations"], stamped]}


def with_portable_paths(history: dict, home: Path, repository: Path) -> dict:
    """``history`` with the paths it records (data folders, backbones) written so that they mean the same on
    another machine: under ``repository`` relative to it, under ``home`` as ``~/...``. What ships in git must not
    name one developer's directories."""

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

    return portable(history)


def last_stage(history: dict) -> str | None:
    return history["stages"][-1]["stage"] if history["stages"] else None
