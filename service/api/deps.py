"""Request dependencies: the process's services (built once by the app's lifespan) and the auth checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from ..config import Settings
from ..queue import JobQueue
from ..records import ImageRecords
from ..registry import Registry
from ..rkeys import RedisKeys
from ..storage import Storage
from ..storage.cache import ReconstructionCache
from . import auth


@dataclass
class Services:
    settings: Settings
    redis: Redis
    keys: RedisKeys
    queue: JobQueue
    records: ImageRecords
    registry: Registry
    storage: Storage
    cache: ReconstructionCache


def build_services(settings: Settings) -> Services:
    from ..storage import open_storage

    redis = Redis.from_url(settings.redis_url)
    keys = RedisKeys(settings.key_prefix)
    storage = open_storage(settings)
    return Services(
        settings=settings, redis=redis, keys=keys,
        queue=JobQueue(redis, keys, max_length=settings.queue_max_length, job_ttl=settings.job_ttl_seconds,
                       max_attempts=settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds),
        records=ImageRecords(redis, keys), registry=Registry(redis, keys), storage=storage,
        cache=ReconstructionCache(storage, redis, keys, settings.reconstruction_cache_bytes),
    )


def get_services(request: Request) -> Services:
    return request.app.state.services


def _read_access(request: Request, services: Annotated[Services, Depends(get_services)]) -> None:
    auth.require_read(services.settings, request)


def _write_access(request: Request, services: Annotated[Services, Depends(get_services)]) -> None:
    auth.require_write(services.settings, request)


ServicesDep = Annotated[Services, Depends(get_services)]
ReadAccess = Depends(_read_access)
WriteAccess = Depends(_write_access)
