"""The files `tadm ingest` reads: every file under a folder, or every object under an S3 prefix.

Listing happens first (so the progress has a total); each file's bytes are read only when its turn comes.
Whether a file is an image is decided later, from its content: the extension says nothing the API trusts.
Names starting with a dot (``.DS_Store``, ``.git/``, ``._photo.jpg``) are the file system's or a tool's own
bookkeeping, never photos, and are not read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any


class SourceError(Exception):
    """A SOURCE that cannot be listed at all: no such folder, no such bucket, no credentials, no boto3."""


class UnreadableFile(Exception):
    """One file that was listed but could not be read; the run goes on without it."""


@dataclass(frozen=True)
class SourceFile:
    """One file to ingest: ``name`` is what the report calls it (a path, or ``s3://bucket/key``)."""

    name: str
    _read: Callable[[], bytes]

    def read(self) -> bytes:
        try:
            return self._read()
        except UnreadableFile:
            raise
        except Exception as exc:  # OSError, or whatever botocore raised for one object
            raise UnreadableFile(str(exc) or type(exc).__name__) from exc


def list_sources(specs: list[str]) -> list[SourceFile]:
    """The files of every SOURCE, in a stable order, each once even if two SOURCEs overlap."""
    files: dict[str, SourceFile] = {}
    for spec in specs:
        listed = s3_files(spec) if spec.startswith("s3://") else folder_files(Path(spec))
        for file in listed:
            files.setdefault(file.name, file)
    return list(files.values())


def _fail(message: str) -> bytes:
    raise UnreadableFile(message)


def folder_files(root: Path) -> Iterator[SourceFile]:
    if root.is_file():
        yield SourceFile(str(root), root.read_bytes)
        return
    if not root.is_dir():
        raise SourceError(f"{root}: no such folder (a SOURCE is a folder or s3://bucket/prefix)")
    unreadable: list[OSError] = []
    for folder, subfolders, names in os.walk(root, onerror=unreadable.append):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if not name.startswith(".") and path.is_file():
                yield SourceFile(str(path), path.read_bytes)
    # A folder that cannot be listed is one failed row, not the end of the run.
    for error in unreadable:
        yield SourceFile(str(error.filename or root), partial(_fail, f"cannot list this folder: {error.strerror}"))


def s3_files(url: str) -> Iterator[SourceFile]:
    """Objects under ``s3://bucket/prefix``: the prefix is a folder (``photos`` means ``photos/...``, not
    ``photos2/``) or one object's key. The endpoint is ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (an
    S3-compatible store) when set; credentials come from the usual AWS variables and files."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise SourceError(f"{url}: no bucket (write s3://bucket/prefix)")
    client = _s3_client()
    from botocore.exceptions import BotoCoreError, ClientError

    folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(f"cannot list {url}: {exc}") from exc
    for key in keys:
        inside = key == prefix or key.startswith(folder)
        relative = key[len(folder):] if key.startswith(folder) else key.rpartition("/")[2]
        hidden = any(part.startswith(".") for part in relative.split("/"))
        if inside and not key.endswith("/") and not hidden:  # "folder/" keys are markers some tools write
            yield SourceFile(f"s3://{bucket}/{key}", partial(_get_object, client, bucket, key))


def _s3_client() -> Any:
    try:
        import boto3
    except ModuleNotFoundError as exc:
        raise SourceError("s3:// sources need boto3: install the `s3` extra (pip install 'tadm[s3]')") from exc
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint)  # credentials read now, not cached ones


def _get_object(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()
