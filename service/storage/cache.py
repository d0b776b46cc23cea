"""The reconstruction cache: reconstructions are re-creatable from their thumbnail, so they live under a byte
budget. Redis keeps the bookkeeping (size per key, last access in a sorted set) shared by the API, which
touches an entry on every hit, and the workers, which add entries and evict the least recently used."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..redis_client import AsyncRedis
from ..redis_keys import RedisKeys, as_str
from .base import Storage
from .memory import BytesLRU

logger = logging.getLogger(__name__)


class ReconstructionCache:
    def __init__(self, storage: Storage, redis: AsyncRedis, keys: RedisKeys, budget_bytes: int,
                 memory: BytesLRU | None = None) -> None:
        self.storage, self.redis, self.keys, self.budget = storage, redis, keys, budget_bytes
        self.memory = memory  # an API process's copies (service.storage.memory); None in workers
        self._touches: set[asyncio.Task] = set()
        self._touched: dict[str, float] = {}  # key -> when this process last touched it in the background

    async def put(self, key: str, data: bytes) -> list[str]:
        """Store ``data`` under ``key``, then evict least recently used entries beyond the budget.
        Returns the evicted keys."""
        await asyncio.to_thread(self.storage.put, key, data)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.recon_lru, {key: time.time()})
            pipe.hget(self.keys.recon_sizes, key)
            pipe.hset(self.keys.recon_sizes, key, len(data))
            _, old, _ = await pipe.execute()
        await self.redis.incrby(self.keys.recon_bytes, len(data) - int(old or 0))
        return await self.evict(keep=key)

    async def get(self, key: str, *, owner_exists: bool = False) -> bytes | None:
        """The bytes (and the entry becomes most recently used), or ``None``. One Redis round trip says whether
        the entry is still in the cache (evicted or removed by any process: not served) and touches it.

        ``owner_exists``: the caller has just read the record of the image it belongs to, so a copy in memory is
        served as it is (its key names its content) and the entry is touched in the background."""
        if owner_exists and self.memory is not None:
            kept = self.memory.get(key)
            if kept is not None:
                self._touch_later(key)
                return kept
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.recon_lru, {key: time.time()}, xx=True)
            pipe.zscore(self.keys.recon_lru, key)
            _, score = await pipe.execute()
        if score is None:
            if self.memory is not None:
                self.memory.discard(key)
            return None
        data: bytes | None = self.memory.get(key) if self.memory is not None else None
        if data is None:
            data = await asyncio.to_thread(self.storage.get, key)
            if data is not None and self.memory is not None:
                self.memory.put(key, data)
        return data

    def _touch_later(self, key: str) -> None:
        """Mark ``key`` used, without waiting; at most once a second per key (finer LRU order buys nothing)."""
        now = time.monotonic()
        if now - self._touched.get(key, float("-inf")) < 1.0:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[key] = now

        async def touch() -> None:
            await self.redis.zadd(self.keys.recon_lru, {key: time.time()}, xx=True)

        task = asyncio.create_task(touch())
        self._touches.add(task)  # held until done (the loop keeps only weak references to tasks)
        task.add_done_callback(self._touches.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed touch costs only LRU order

    async def evict(self, keep: str | None = None) -> list[str]:
        evicted: list[str] = []
        while int(await self.redis.get(self.keys.recon_bytes) or 0) > self.budget:
            popped: Any = await self.redis.zpopmin(self.keys.recon_lru)
            if not popped:
                break
            key = as_str(popped[0][0])
            if key == keep:  # a single entry larger than the budget stays: it was just asked for
                await self.redis.zadd(self.keys.recon_lru, {key: time.time()})
                break
            await self.remove(key, already_popped=True)
            evicted.append(key)
        if evicted:
            logger.info("evicted %d reconstructions over the %d-byte budget", len(evicted), self.budget)
        return evicted

    async def remove(self, key: str, *, already_popped: bool = False) -> None:
        if self.memory is not None:
            self.memory.discard(key)
        await asyncio.to_thread(self.storage.delete, key)
        async with self.redis.pipeline(transaction=True) as pipe:
            if not already_popped:
                pipe.zrem(self.keys.recon_lru, key)
            pipe.hget(self.keys.recon_sizes, key)
            pipe.hdel(self.keys.recon_sizes, key)
            results = await pipe.execute()
        size = results[-2]
        if size is not None:
            await self.redis.decrby(self.keys.recon_bytes, int(size))

    async def total_bytes(self) -> int:
        return int(await self.redis.get(self.keys.recon_bytes) or 0)
