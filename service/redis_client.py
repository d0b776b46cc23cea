"""Connecting to Redis: one server, or a Redis Cluster (``TADM_REDIS_CLUSTER``) through redis-py's cluster
client, which finds the nodes from the one ``TADM_REDIS_URL`` names and sends each command to the node that
owns its keys' slot. Everything else talks to the connection these functions return and names keys with the
:class:`~service.redis_keys.RedisKeys` of the same settings."""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from .config import Settings
from .redis_keys import RedisKeys

AsyncRedis: TypeAlias = Redis | RedisCluster
SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster


def keys_for(settings: Settings) -> RedisKeys:
    """The key names of this service instance (hash-tagged on a cluster)."""
    return RedisKeys(settings.key_prefix, cluster=settings.redis_cluster)


def connect(settings: Settings, **options: Any) -> AsyncRedis:
    """The asyncio connection pool of one process (no I/O until the first command)."""
    if settings.redis_cluster:  # (the cluster client retries on its own, finding the slots' nodes again)
        return RedisCluster.from_url(settings.redis_url, **options)
    # Connections pooled before a Redis restart are closed by then: each fails its next command once. Retried
    # on a new connection (twice, within a second) rather than failing a request; redis-py's from_url would
    # not retry at all.
    options.setdefault("retry", Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
    return Redis.from_url(settings.redis_url, **options)


def connect_sync(settings: Settings, **options: Any) -> SyncRedis:
    """A blocking client, for the dev server's log and the worker probe."""
    if settings.redis_cluster:
        return redis.RedisCluster.from_url(settings.redis_url, **options)
    return redis.Redis.from_url(settings.redis_url, **options)


# KEYS: any key (it only routes the call: a cluster runs the script on the node that owns that key's slot).
_TIME = "return redis.call('TIME')"


async def server_time(client: AsyncRedis, key: str) -> float:
    """The clock of the Redis server holding ``key``, in seconds. On a cluster every process reads the node
    that owns ``key``, so that times written by one process and compared by another come from one clock."""
    seconds, micros = await client.register_script(_TIME)(keys=[key])
    return int(seconds) + int(micros) / 1e6


def server_time_sync(client: SyncRedis, key: str) -> float:
    """:func:`server_time` with a blocking client."""
    seconds, micros = client.register_script(_TIME)(keys=[key])  # type: ignore[misc]
    return int(seconds) + int(micros) / 1e6
