"""Bytes an API process keeps in memory: content-addressed objects (a thumbnail by the hash of its bytes, a
reconstruction by model, thumbnail hash and format) never change under their key, so a copy in memory is never
stale; whether the object still *exists* is decided elsewhere on every request (the image record, the cache's
index in Redis), so a deleted image or an evicted reconstruction is not served from here either.

A cached read then costs one Redis round trip and no storage read, which is what keeps an origin behind a CDN
close to a bare route (``scripts/bench_cached_reads.py``)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict


class Blob(bytes):
    """Bytes kept in memory, with their SHA-256 computed once: it is the strong ETag of every response serving
    them, and hashing a reconstruction on each read would cost more than the rest of the read."""

    _sha256: str | None = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self).hexdigest()
        return self._sha256


class BytesLRU:
    """Least-recently-used bytes under a byte budget (``TADM_API_MEMORY_CACHE_BYTES``; 0 keeps nothing). Used
    from one event loop: no locking."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.size = 0
        self._items: OrderedDict[str, Blob] = OrderedDict()

    def get(self, key: str) -> Blob | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.budget // 4:  # one large object must not push out everything else
            return
        self.discard(key)
        self._items[key] = data if isinstance(data, Blob) else Blob(data)
        self.size += len(data)
        while self.size > self.budget:
            _, evicted = self._items.popitem(last=False)
            self.size -= len(evicted)

    def discard(self, key: str) -> None:
        data = self._items.pop(key, None)
        if data is not None:
            self.size -= len(data)

    def __len__(self) -> int:
        return len(self._items)
