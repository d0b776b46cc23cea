"""The job queue on a real Redis: dedupe, bound, cancel, reclaim of a dead consumer's entries, retries and
the dead-letter path. (The same paths end to end, with real workers, are in test_e2e_b_faults.py.)"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from service.errors import QueueFull
from service.queue.job_queue import JobQueue
from service.queue.jobs import Job, UpscaleParams, upscale_job
from service.redis_keys import RedisKeys

pytestmark = pytest.mark.anyio
MODEL = "abcdef0123456789"


@pytest.fixture
async def queue(settings):
    redis = Redis.from_url(settings.redis_url)
    q = JobQueue(redis, RedisKeys(settings.key_prefix), max_length=2, max_attempts=2, backoff_seconds=0.05)
    await q.ensure_groups(q.streams_for(MODEL))
    yield q
    await redis.aclose()


def _job(n: int, priority: str = "interactive") -> Job:
    params = UpscaleParams(thumbnail_key="inputs/x.png", thumbnail_sha=f"{n:02d}" * 32, format="png")
    return upscale_job(params, model_id=MODEL, priority=priority)


async def test_duplicate_collapses_and_bound_refuses(queue):
    first, created = await queue.enqueue(_job(1))
    again, created_again = await queue.enqueue(_job(1))
    assert created and not created_again and again.id == first.id
    await queue.enqueue(_job(2))
    with pytest.raises(QueueFull) as exc:
        await queue.enqueue(_job(3), retry_after=9)
    assert exc.value.retry_after == 9 and exc.value.status == 503
    assert await queue.get(_job(3).id) is None  # nothing half-written
    await queue.enqueue(_job(3, "background"))  # the other priority has its own bound


async def test_interactive_is_read_before_background(queue):
    await queue.enqueue(_job(1, "background"))
    await queue.enqueue(_job(2, "interactive"))
    entries = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    assert [e.job_id for e in entries] == [_job(2).id]


async def test_cancel_before_start_is_skipped(queue):
    await queue.enqueue(_job(1))
    cancelled = await queue.cancel(_job(1).id)
    assert cancelled.status == "cancelled"
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=5, block_ms=100)
    assert await queue.start(entry, "w") == "cancelled"


async def test_dead_consumer_is_reclaimed_and_live_one_is_not(queue):
    await queue.enqueue(_job(1))
    await queue.enqueue(_job(2))
    streams = queue.streams_for(MODEL)
    held = await queue.read("dead", streams, count=1, block_ms=100)
    kept = await queue.read("alive", streams, count=1, block_ms=100)
    for entry in held + kept:
        assert await queue.start(entry, "x") == "running"
    await asyncio.sleep(0.3)
    await queue.keep_alive("alive", kept)  # what a live worker's heartbeat does
    reclaimed = await queue.reclaim("rescuer", streams, min_idle_seconds=0.2, count=10)
    assert [e.job_id for e in reclaimed] == [held[0].job_id]
    assert await queue.start(reclaimed[0], "rescuer") == "running"
    assert (await queue.get(held[0].job_id)).attempts == 2
    assert await queue.succeed(reclaimed[0], result_key="k") == "ok"
    assert (await queue.get(held[0].job_id)).status == "succeeded"
    assert await queue.redis.xlen(streams[0]) == 1  # acknowledged entries leave the stream


async def test_retry_backoff_then_dead_letter(queue):
    await queue.enqueue(_job(1))
    streams = queue.streams_for(MODEL)
    (entry,) = await queue.read("w", streams, count=1, block_ms=100)
    assert await queue.start(entry, "w") == "running"
    delay = await queue.retry_later(entry, attempts=1, problem={"type": "t", "status": 500})
    assert delay == pytest.approx(0.05)
    assert (await queue.get(entry.job_id)).status == "queued"
    await asyncio.sleep(0.1)
    assert await queue.release_due() == 1
    (again,) = await queue.read("w", streams, count=1, block_ms=100)
    assert await queue.start(again, "w") == "running"  # attempt 2 of 2
    await queue.retry_later(again, attempts=2, problem={"type": "t", "status": 500})
    await asyncio.sleep(0.2)
    await queue.release_due()
    (third,) = await queue.read("w", streams, count=1, block_ms=100)
    assert await queue.start(third, "w") == "exhausted"
    await queue.fail(third, {"type": "urn:tadm:problem:job-failed", "status": 500}, dead_letter=True)
    assert (await queue.get(entry.job_id)).status == "failed"
    assert [d["job"] for d in await queue.dead_letters()] == [entry.job_id]


async def test_late_success_does_not_overwrite_a_cancel(queue):
    await queue.enqueue(_job(1))
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    await queue.start(entry, "w")
    await queue.cancel(entry.job_id)
    assert await queue.succeed(entry, result_key="k") == "cancelled"
    assert (await queue.get(entry.job_id)).status == "cancelled"


async def test_wait_returns_on_completion(queue):
    await queue.enqueue(_job(1))
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    await queue.start(entry, "w")

    async def finish_soon():
        await asyncio.sleep(0.2)
        await queue.succeed(entry, result_key="k")

    task = asyncio.create_task(finish_soon())
    job = await queue.wait(entry.job_id, timeout=10)
    await task
    assert job.status == "succeeded"
