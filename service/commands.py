"""``tadm serve [--dev]`` and ``tadm worker``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP API (with --dev: Redis, a CPU worker and storage too)")
    p.add_argument("--dev", action="store_true",
                   help="embedded Redis (unless TADM_REDIS_URL is set), one CPU worker, storage under ./.tadm/")
    p.add_argument("--host", default=None, help="address to bind (default: TADM_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to bind (default: TADM_PORT, 8000)")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("worker", help="run a worker: loads the model once and serves jobs from Redis")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model", type=Path, default=None, help="model directory (default: TADM_MODEL)")
    group.add_argument("--preset", default=None, help="preset to build (default: TADM_MODEL_PRESET, nano)")
    p.add_argument("--scale", type=int, choices=(16, 32), default=None, help="scale of the preset model")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: TADM_DEVICE, else auto)")
    p.set_defaults(handler=_worker)


def _serve(args: argparse.Namespace) -> int:
    from .config import Settings

    settings = Settings()
    host, port = args.host or settings.host, args.port or settings.port
    if args.dev:
        from .devserver import run_dev_server

        return run_dev_server(host, port)
    import uvicorn

    from .api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=True)
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from model.checkpoints import ModelDirectoryError

    from .cli import CommandError
    from .config import Settings
    from .worker import run_worker

    overrides = {"model": args.model, "model_preset": args.preset, "model_scale": args.scale,
                 "device": args.device}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        asyncio.run(run_worker(settings))
    except ModelDirectoryError as exc:
        raise CommandError(str(exc)) from exc
    return 0
