"""Bytes an API process keeps in memory: content-addressed objects (a thumbnail by the hash of its bytes, a
reconstruction by model, thumbnail hash and format) never change under their key, so a copy in memory is never
stale; whether the object still *exists* is decided elsewhere on every request (the image record, the cache's
index in Redis), so a deleted image or an evicted reconstruction is not served from here either.

A cached read then costs one Redis round trip and no storage read, which is what keeps an origin behind a CDN
close to a bare route (``scripts/bench_cached_reads.py``)."""

from __future__ import annotations

from collections import OrderedDict


class BytesLRU:
    """Least-recently-used bytes under a byte budget (``TADM_API_MEMORY_CACHE_BYTES``; 0 keeps nothing). Used
    from one event loop: no locking."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.budget // 4:  # one large object must not push out everything else
            return
        self.discard(key)
        self._items[key] = data
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
