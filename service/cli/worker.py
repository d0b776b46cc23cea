"""``tadm worker``: one worker process per device (see :mod:`service.worker`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from model.thumbnail import SUPPORTED_SCALES


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("worker", help="run a worker: loads the model once and serves jobs from Redis")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", type=Path, default=None, help="model directory (default: TADM_MODEL)")
    group.add_argument("--preset", default=None, help="preset to build (default: TADM_MODEL_PRESET, nano)")
    parser.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=None, help="scale of the preset model")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: TADM_DEVICE, else auto)")
    parser.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from model.checkpoints import ModelDirectoryError
    from model.cli import CommandError

    from ..config import Settings
    from ..worker.process import WorkerSetupError, run_worker

    overrides = {"model": args.model, "model_preset": args.preset, "model_scale": args.scale,
                 "device": args.device}
    settings = Settings(**{name: value for name, value in overrides.items() if value is not None})
    try:
        asyncio.run(run_worker(settings))
    except (ModelDirectoryError, WorkerSetupError) as exc:
        raise CommandError(str(exc)) from exc
    return 0
