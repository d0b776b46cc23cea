"""``tadm ingest SOURCE... --api URL``: bring an existing photo store into the service.

Every image under the folders and S3 prefixes given is uploaded once (looked up by SHA-256 first, so a re-run
resumes and never uploads a file twice), ``--concurrency`` at a time, with a progress line on stderr, a summary
table on stdout and, on request, a JSON and a CSV report. ``docs/ingest.md`` describes it in full.

Exit status: 0 when every file is stored, 1 when some failed, 2 for a usage error (a bad SOURCE, an unreachable
API, a refused API key), 130 when stopped by Ctrl-C (the report says what was done).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ingest", help="upload the photos of folders or S3 prefixes once each, with a report",
        description="Upload every PNG, JPEG and WebP image (recognised by its content) under each SOURCE, "
        "skipping those the service stores already: a re-run resumes where a stopped one ended.",
        epilog="SOURCE is a folder (read recursively) or s3://bucket/prefix (needs the `s3` extra; the endpoint "
        "is AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL when set, credentials the usual AWS variables). "
        "Exit status: 0 all stored, 1 some files failed, 2 usage error, 130 interrupted.")
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="a folder or s3://bucket/prefix")
    parser.add_argument("--api", default="http://127.0.0.1:8000", metavar="URL",
                        help="where the tadm API listens (default: %(default)s)")
    parser.add_argument("--api-key", metavar="KEY", help="sent as `Authorization: Bearer KEY`")
    parser.add_argument("--scale", default="16", choices=["16", "32", "auto"],
                        help="thumbnail scale; auto: the most compact one whose reconstruction reaches the "
                        "quality target (default: %(default)s)")
    parser.add_argument("--min-psnr-y", type=float, metavar="DB",
                        help="with --scale auto: the PSNR-Y to reach (default: the service's)")
    parser.add_argument("--min-ssimulacra2", type=float, metavar="S",
                        help="with --scale auto: the SSIMULACRA2 score to reach (default: the service's)")
    parser.add_argument("--concurrency", type=_positive, default=4, metavar="N",
                        help="files in progress at once (default: %(default)s)")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one CSV row per file here")
    parser.add_argument("--dry-run", action="store_true",
                        help="upload nothing: list what would be ingested and estimate the bytes it would take")
    parser.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from .command import run_command  # httpx, tqdm and Pillow only when the command runs

    return run_command(args)
