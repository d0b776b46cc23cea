"""The `tadm` entry point: one parser over every command module, logging, and one-line errors.

Each command module has a ``register(subparsers)`` function; a :class:`model.cli.CommandError` raised by a
handler is printed as one line with exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from model.cli import CommandError

# Modules that contribute commands, in help order. A module that is absent (an optional extra) is skipped.
COMMAND_MODULES = [
    "model.cli",  # downscale, upscale, import-official
    "service.cli.serve",  # serve
    "service.cli.worker",  # worker
    "service.cli.models",  # models pull
    "service.cli.ingest",  # ingest
    "model.training.cli",  # train
    "model.evaluation.cli",  # eval
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tadm", description="Extreme image rescaling service (TADM).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that command group is not part of this checkout/install
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        print(f"tadm {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
