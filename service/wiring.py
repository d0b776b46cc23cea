"""The shared wiring of the API and the worker: one Redis connection pool (a cluster's with
``TADM_REDIS_CLUSTER``), and the queue, registry, image records, storage, reconstruction cache and posted
thumbnails built on it from the settings, once per process."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .queue.job_queue import JobQueue
from .queue.registry import Registry, WorkerInfo
from .redis_client import AsyncRedis, connect, keys_for, server_time
from .redis_keys import RedisKeys
from .storage import Storage, open_storage
from .storage.cache import ReconstructionCache
from .storage.memory import BytesLRU
from .storage.posted import PostedThumbnails
from .storage.records import ImageRecords


@dataclass
class Services:
    """What a process talks to. ``close()`` releases the Redis connections."""

    settings: Settings
    redis: AsyncRedis
    keys: RedisKeys
    queue: JobQueue
    registry: Registry
    records: ImageRecords
    storage: Storage
    cache: ReconstructionCache
    posted: PostedThumbnails
    memory: BytesLRU
    started_at: float | None = None  # Redis time when this process first reached Redis

    async def started(self) -> float:
        """When this process started, by the Redis clock (read when Redis first answers): readiness counts only
        workers that renewed their heartbeat since."""
        if self.started_at is None:
            self.started_at = await server_time(self.redis, self.keys.workers)
        return self.started_at

    async def live_workers(self) -> list[WorkerInfo]:
        """The workers that renewed their heartbeat since this process started: what `/readyz`, `/v1/info` and
        `/metrics` count, so that they never disagree."""
        return await self.registry.live_workers(since=await self.started())

    async def close(self) -> None:
        await self.redis.aclose()


def build_services(settings: Settings, *, memory_bytes: int = 0) -> Services:
    """The services of one process; ``memory_bytes`` of content-addressed bytes kept in memory (the API's)."""
    redis = connect(settings)
    keys = keys_for(settings)
    storage = open_storage(settings)
    memory = BytesLRU(memory_bytes)
    return Services(
        settings=settings, redis=redis, keys=keys,
        queue=JobQueue(redis, keys, max_length=settings.queue_max_length, job_ttl=settings.job_ttl_seconds,
                       max_attempts=settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds),
        registry=Registry(redis, keys), records=ImageRecords(redis, keys), storage=storage,
        cache=ReconstructionCache(storage, redis, keys, settings.reconstruction_cache_bytes,
                                  memory if memory_bytes else None),
        posted=PostedThumbnails(storage, redis, keys, settings.posted_thumbnail_retention_seconds),
        memory=memory,
    )
