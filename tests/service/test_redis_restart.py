"""A Redis restart costs the service no request: connections pooled before it are closed by the new server,
and each must be replaced, not fail a request (the whole stack across a restart: test_e2e_b_faults.py)."""

from __future__ import annotations

import asyncio

import pytest

from service.dev.embedded_redis import EmbeddedRedis
from service.redis_client import connect

pytestmark = pytest.mark.anyio


async def test_connections_pooled_before_a_restart_are_replaced(settings, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    client = connect(settings.model_copy(update={"redis_url": server.url}))
    try:
        # Four commands at once: four pooled connections (a waiting request holds two, its pub/sub one too).
        await asyncio.gather(*(client.blpop([f"k{i}"], timeout=0.1) for i in range(4)))
        server.restart()
        assert await asyncio.gather(*(client.set(f"k{i}", i) for i in range(4))) == [True] * 4
    finally:
        await client.aclose()
        server.stop()
