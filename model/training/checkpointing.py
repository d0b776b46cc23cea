"""A training run's checkpoints: only what changes (the trainable tensors, the optimiser and schedule states,
the RNG states and the step), so that a resumed run continues exactly where the checkpoint was taken.

``OUTPUT/checkpoints/step-N/`` holds ``trainable.safetensors``, ``optimizer.pt``, the weight average when the
run keeps one (``averaged.safetensors``, :mod:`.weight_average`) and ``state.json``, written last so that its
presence marks the checkpoint complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .registry import NamedParameters
from .weight_average import WeightAverage

CHECKPOINTS_DIR = "checkpoints"
TRAINABLE_FILE = "trainable.safetensors"


class TrainingSetupError(ValueError):
    """A training run that cannot start as configured (missing weights, wrong start model, bad data, or a
    checkpoint written for other parameters)."""


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / CHECKPOINTS_DIR).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    found = [p for p in found if (p / "state.json").is_file()]  # a checkpoint is complete once state.json exists
    return found[-1] if found else None


def save_checkpoint(output_dir: Path, step: int, params: NamedParameters, optimizer, scheduler,
                    keep: int, loop_seconds: float = 0.0, average: WeightAverage | None = None) -> Path:
    """``loop_seconds``: the stage's training-loop time up to this step, over every run that led here, so that a
    stage stopped and resumed still records its whole wall time."""
    from safetensors.torch import save_file

    directory = output_dir / CHECKPOINTS_DIR / f"step-{step:08d}"
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: p.detach().cpu().contiguous() for k, p in params.items()}, str(directory / TRAINABLE_FILE))
    if average is not None:
        average.save(directory)
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
               directory / "optimizer.pt")
    # to the millisecond: a resumed run adds to it, and a few fast steps round to nothing at a tenth of a second
    state = {"step": step, "loop_seconds": round(loop_seconds, 3)}
    (directory / "state.json").write_text(json.dumps(state) + "\n")  # last: marks it complete
    for old in sorted((output_dir / CHECKPOINTS_DIR).glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return directory


def read_trainable(directory: Path, params: NamedParameters, owner: str = "",
                   file: str = TRAINABLE_FILE) -> dict[str, torch.Tensor]:
    """A checkpoint's trainable tensors (``file``: the weights, or their average), refused unless they are
    exactly ``params``' names (``owner``, e.g. " than stage3 of MODEL", says in the message whose parameters
    were expected)."""
    from safetensors.torch import load_file

    saved = load_file(str(directory / file))
    if set(saved) != set(params):
        raise TrainingSetupError(f"{directory} was written for other parameters{owner} ({len(saved)} vs "
                                 f"{len(params)} tensors); was it another stage or model?")
    return saved


def load_trainable(directory: Path, params: NamedParameters) -> None:
    """Copy a checkpoint's trainable tensors into ``params`` (the same names, all of them)."""
    saved = read_trainable(directory, params)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])


def load_checkpoint(directory: Path, params: NamedParameters, optimizer, scheduler) -> int:
    load_trainable(directory, params)
    state = torch.load(directory / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    # The quantisation noise draws from the global generators: restore them so that resuming is exact.
    torch.set_rng_state(state["rng"]["cpu"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["rng"]["cuda"]))
    return checkpoint_step(directory)


def checkpoint_step(directory: Path) -> int:
    return int(json.loads((directory / "state.json").read_text())["step"])


def checkpoint_seconds(directory: Path) -> float:
    """The loop time the runs before this checkpoint spent reaching it (0 for checkpoints written before it was
    recorded)."""
    return float(json.loads((directory / "state.json").read_text()).get("loop_seconds", 0.0))
