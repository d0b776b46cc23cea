"""The `tadm` command. Each command group lives in its own module with a ``register(subparsers)`` function;
heavy imports (torch, the model) happen inside the handlers so that `tadm --help` and the API stay light."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that contribute commands, in help order. A module that is absent (an optional extra) is skipped.
COMMAND_MODULES = [
    "model.cli",  # downscale, upscale, import-official
    "service.commands",  # serve, worker
    "service.models_cli",  # models pull
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


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1, no traceback."""


if __name__ == "__main__":
    # Run as `python -m service.cli`, this file is `__main__`: dispatch through the importable module so that
    # `CommandError` is the one class the command modules raise.
    from service.cli import main as _main

    sys.exit(_main())
