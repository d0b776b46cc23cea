"""``tadm serve [--dev] [--workers N]``: the HTTP API under uvicorn, or with ``--dev`` the whole service on one
machine."""

from __future__ import annotations

import argparse

# What uvicorn imports in each of its worker processes when there are several (it needs an import string).
APP_FACTORY = "service.api.app:create_app"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the HTTP API (with --dev: Redis, a CPU worker and storage too)")
    parser.add_argument("--dev", action="store_true",
                        help="embedded Redis (unless TADM_REDIS_URL is set), one CPU worker, storage under ./.tadm/")
    parser.add_argument("--host", default=None, help="address to bind (default: TADM_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to bind (default: TADM_PORT, 8000)")
    parser.add_argument("--workers", type=int, default=None,
                        help="API processes sharing the port (default: TADM_API_WORKERS, 1; not with --dev)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from model.cli import CommandError

    from ..config import Settings

    settings = Settings()
    host, port = args.host or settings.host, args.port or settings.port
    workers = args.workers if args.workers is not None else settings.api_workers
    if workers < 1:
        raise CommandError(f"`--workers` must be at least 1 but is {workers}")
    if args.dev:
        if workers != 1:
            raise CommandError("`--workers` is for `tadm serve` without --dev (the dev server runs one API process)")
        from ..dev.embedded_redis import DataDirectoryInUse
        from ..dev.server import run_dev_server

        try:
            return run_dev_server(host, port)
        except DataDirectoryInUse as exc:
            raise CommandError(str(exc)) from exc
    import uvicorn

    if workers == 1:
        from ..api.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=True)
    else:  # each process builds its app from the same TADM_* environment
        uvicorn.run(APP_FACTORY, factory=True, workers=workers, host=host, port=port, proxy_headers=True)
    return 0
