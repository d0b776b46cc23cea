"""``tadm serve [--dev]``: the HTTP API under uvicorn, or with ``--dev`` the whole service on one machine."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the HTTP API (with --dev: Redis, a CPU worker and storage too)")
    parser.add_argument("--dev", action="store_true",
                        help="embedded Redis (unless TADM_REDIS_URL is set), one CPU worker, storage under ./.tadm/")
    parser.add_argument("--host", default=None, help="address to bind (default: TADM_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to bind (default: TADM_PORT, 8000)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ..config import Settings

    settings = Settings()
    host, port = args.host or settings.host, args.port or settings.port
    if args.dev:
        from ..dev.server import run_dev_server

        return run_dev_server(host, port)
    import uvicorn

    from ..api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=True)
    return 0
