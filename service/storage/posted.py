"""Thumbnails clients post to ``POST /v1/reconstructions``: the client keeps its own copy, so the service keeps
one only while its reconstruction may still need it. Each post renews the thumbnail's time in a Redis sorted set;
workers sweep the ones not posted again for ``TADM_POSTED_THUMBNAIL_RETENTION_SECONDS`` (a reconstruction that
is still cached keeps being served; one evicted later needs the thumbnail posted again)."""

from __future__ import annotations

import asyncio
import logging
import time

from ..redis_client import AsyncRedis
from ..redis_keys import RedisKeys, as_str
from .base import Storage

logger = logging.getLogger(__name__)

# KEYS: the sorted set. ARGV: cutoff time, most members. Pops the members last posted before the cutoff, so that
# two sweepers never both take (and count) one thumbnail.
_POP_EXPIRED = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


class PostedThumbnails:
    def __init__(self, storage: Storage, redis: AsyncRedis, keys: RedisKeys,
                 retention_seconds: float) -> None:
        self.storage, self.redis, self.keys = storage, redis, keys
        self.retention = retention_seconds
        self._pop_expired = redis.register_script(_POP_EXPIRED)

    async def store(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key`` (content-addressed) and restart its retention."""
        await self.redis.zadd(self.keys.posted_thumbnails, {key: time.time()})
        if not await asyncio.to_thread(self.storage.exists, key):
            await asyncio.to_thread(self.storage.put, key, data)

    async def sweep(self, now: float | None = None, limit: int = 100) -> list[str]:
        """Delete up to ``limit`` thumbnails not posted for the retention period; returns their keys."""
        cutoff = (now if now is not None else time.time()) - self.retention
        expired = [as_str(k) for k in await self._pop_expired(keys=[self.keys.posted_thumbnails],
                                                              args=[cutoff, limit])]
        for key in expired:
            await asyncio.to_thread(self.storage.delete, key)
        if expired:
            logger.info("deleted %d posted thumbnail(s) older than %.0f s", len(expired), self.retention)
        return expired
