"""The storage protocol. Backends are synchronous (boto3 and the filesystem are); async callers run them in a
thread. Keys are ``/``-separated relative paths made by :mod:`service.storage.keys`."""

from __future__ import annotations

from typing import Protocol


class StorageError(OSError):
    """A backend failure (disk, network). Workers treat it as transient and retry."""


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` atomically: readers see the old object, or the new one whole, never a part."""

    def get(self, key: str) -> bytes | None:
        """The bytes, or ``None`` when the key does not exist."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (for tests and maintenance)."""
