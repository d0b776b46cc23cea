"""``training.json``: how a model directory came to be, kept across every run that trained it.

    {"stages": [entry, ...], "cumulative_steps": {"stage0": N, ...}, "evaluations": [record, ...]}

* ``stages``: one entry per stage run, oldest first, as the trainer wrote it (steps, rate, batch, crop, wall
  time, finish time, the model id it saved). A model trained in several runs keeps every segment: each run's
  stages add entries, they never replace earlier ones.
* ``cumulative_steps``: the optimiser steps each stage has had in all, summed over ``stages``.
* ``evaluations``: what the model measured at points of its training (e.g. Kodak-24 against bicubic), each
  with the model id and cumulative steps it was measured at; carried forward from the start model. The trainer
  only carries them; ``scripts/ship.py`` adds them when a model is shipped.

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


def last_stage(history: dict) -> str | None:
    return history["stages"][-1]["stage"] if history["stages"] else None
