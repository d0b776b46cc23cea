"""The `tadm ingest` command: check the arguments and the API, run the ingest, print and write what it did."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

import httpx

from service.client import APIError, AsyncClient

from .estimate import AUTO_ESTIMATE_SCALE
from .progress import Progress
from .report import summary_table, totals, write_csv, write_json
from .runner import Ingest, Options, Outcome, Scale
from .sources import SourceError, list_sources

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Wrong arguments, a SOURCE that cannot be listed, an API that cannot be reached: exit status 2."""


def run_command(args: argparse.Namespace) -> int:
    if not args.verbose:  # one log line per request would bury the progress line
        for noisy in ("httpx", "botocore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return asyncio.run(_run(args, _options(args)))
    except (UsageError, SourceError) as exc:
        sys.stderr.write(f"tadm ingest: error: {exc}\n")
        return EXIT_USAGE


def _options(args: argparse.Namespace) -> Options:
    scale: Scale = "auto" if args.scale == "auto" else int(args.scale)
    if scale != "auto" and (args.min_psnr_y is not None or args.min_ssimulacra2 is not None):
        raise UsageError("--min-psnr-y and --min-ssimulacra2 go with --scale auto")
    return Options(scale, args.min_psnr_y, args.min_ssimulacra2, args.concurrency, args.dry_run)


async def _run(args: argparse.Namespace, options: Options) -> int:
    async with AsyncClient(args.api, api_key=args.api_key, timeout=60.0, server_wait=30.0) as client:
        reachable = await _check_api(client, args.api, options.dry_run)  # before a listing that may take long
        files = await asyncio.to_thread(list_sources, args.sources)
        progress = Progress(len(files), "dry run" if options.dry_run else "ingest")
        try:
            outcome = await Ingest(files, client if reachable else None, options, progress).run()
        finally:
            progress.close()
    _finish(args, options, outcome, len(files), reachable)
    if outcome.fatal:
        sys.stderr.write(f"tadm ingest: error: {outcome.fatal}\n")
        return EXIT_USAGE
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(row.status == "failed" for row in outcome.rows) else EXIT_OK


async def _check_api(client: AsyncClient, url: str, dry_run: bool) -> bool:
    """Whether the API answers; a real run cannot go on without it, a dry run estimates every file."""
    try:
        await client.stats()
        return True
    except (httpx.TransportError, APIError, ValueError, KeyError) as exc:  # not JSON, or not stats
        reason = f"cannot reach the API at {url}: {str(exc) or type(exc).__name__}"
        if not dry_run:
            raise UsageError(reason) from exc
        sys.stderr.write(f"tadm ingest: {reason}; estimating every file, none is looked up\n")
        return False


def _finish(args: argparse.Namespace, options: Options, outcome: Outcome, files: int, reachable: bool) -> None:
    summary = totals(outcome.rows, files)
    about: dict[str, Any] = {"api": args.api, "sources": args.sources, "scale": options.scale,
                             "dry_run": options.dry_run, "interrupted": outcome.interrupted}
    note = ""
    if options.dry_run:
        scale = AUTO_ESTIMATE_SCALE if options.scale == "auto" else options.scale
        about["estimate"] = f"a plain bicubic thumbnail PNG at {scale}x for each file not stored yet"
        about["looked_up"] = reachable
        note = f" (estimate: {about['estimate']})"
    if args.report:
        write_json(args.report, outcome.rows, summary, **about)
    if args.csv:
        write_csv(args.csv, outcome.rows)
    where = args.api if reachable else f"{args.api} (not reachable: nothing looked up)"
    heading = f"Dry run against {where}, nothing uploaded" if options.dry_run else f"Ingest into {where}"
    sys.stdout.write(f"{heading}, scale {options.scale}:\n")
    sys.stdout.write(summary_table(summary, outcome.rows, dry_run=options.dry_run, estimate_note=note))
