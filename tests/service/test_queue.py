"""The job queue on a real Redis and on a real Redis Cluster: dedupe, bound, cancel, reclaim of a dead
consumer's entries, retries and the dead-letter path. (The same paths end to end, with real workers, are in
test_e2e_b_faults.py.)

No test waits for time to pass: an entry's idle time is set with ``XCLAIM … IDLE`` and retries are released at
an explicit ``now``, so a loaded machine cannot change an outcome."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import RedisCluster

from service.errors import QueueFull
from service.queue.job_queue import Entry, JobQueue
from service.queue.jobs import Job, UpscaleParams, upscale_job
from service.redis_client import connect, keys_for

pytestmark = pytest.mark.anyio
MODEL = "abcdef0123456789"
BACKOFF = 30.0  # seconds; the tests release retries at an explicit time instead of waiting


@pytest.fixture
async def queue(settings, any_redis):
    url, cluster = any_redis
    settings = settings.model_copy(update={"redis_url": url, "redis_cluster": cluster})
    redis = connect(settings)
    q = JobQueue(redis, keys_for(settings), max_length=2, max_attempts=2, backoff_seconds=BACKOFF)
    await q.ensure_groups(q.streams_for(MODEL))
    yield q
    await redis.aclose()


def _job(n: int, priority: str = "interactive") -> Job:
    params = UpscaleParams(thumbnail_key="inputs/x.png", thumbnail_sha=f"{n:02d}" * 32, format="png")
    return upscale_job(params, model_id=MODEL, priority=priority)


async def _set_idle(queue: JobQueue, entry: Entry, consumer: str, seconds: float) -> None:
    """Make ``entry`` look untouched for ``seconds`` (its owner stays ``consumer``)."""
    await queue.redis.xclaim(entry.stream, queue.keys.group, consumer, 0, [entry.entry_id],
                             idle=int(seconds * 1000), justid=True)


async def _idle_seconds(queue: JobQueue, entry: Entry) -> float:
    (pending,) = await queue.redis.xpending_range(entry.stream, queue.keys.group, min=entry.entry_id,
                                                  max=entry.entry_id, count=1)
    return pending["time_since_delivered"] / 1000


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
    # A minute passes: nobody touched either entry since.
    await _set_idle(queue, held[0], "dead", 60)
    await _set_idle(queue, kept[0], "alive", 60)
    assert await _idle_seconds(queue, kept[0]) >= 60
    await queue.keep_alive("alive", kept)  # what a live worker's heartbeat does
    assert await _idle_seconds(queue, kept[0]) < 30
    reclaimed = await queue.reclaim("rescuer", streams, min_idle_seconds=30, count=10)
    assert [e.job_id for e in reclaimed] == [held[0].job_id]
    assert await queue.start(reclaimed[0], "rescuer") == "running"
    assert (await queue.get(held[0].job_id)).attempts == 2
    assert await queue.succeed(reclaimed[0]) == "ok"
    assert (await queue.get(held[0].job_id)).status == "succeeded"
    assert await queue.redis.xlen(streams[0]) == 1  # acknowledged entries leave the stream


async def test_retry_backoff_then_dead_letter(queue):
    job = _job(1)
    await queue.enqueue(job)
    streams = queue.streams_for(MODEL)
    (entry,) = await queue.read("w", streams, count=1, block_ms=100)
    assert await queue.start(entry, "w") == "running"
    delay = await queue.retry_later(entry, job, attempts=1, problem={"type": "t", "status": 500})
    assert delay == BACKOFF
    assert (await queue.get(entry.job_id)).status == "queued"
    assert await queue.release_due(MODEL) == 0  # not due before its backoff
    assert await queue.read("w", streams, count=1, block_ms=1) == []
    assert await queue.release_due(MODEL, now=time.time() + delay) == 1
    (again,) = await queue.read("w", streams, count=1, block_ms=100)
    assert await queue.start(again, "w") == "running"  # attempt 2 of 2
    delay = await queue.retry_later(again, job, attempts=2, problem={"type": "t", "status": 500})
    assert delay == 2 * BACKOFF  # doubled
    assert await queue.release_due(MODEL, now=time.time() + delay) == 1
    (third,) = await queue.read("w", streams, count=1, block_ms=100)
    assert await queue.start(third, "w") == "exhausted"
    await queue.fail(third, {"type": "urn:tadm:problem:job-failed", "status": 500}, dead_letter=True)
    assert (await queue.get(entry.job_id)).status == "failed"
    assert [d["job"] for d in await queue.dead_letters()] == [entry.job_id]


async def test_a_retry_returns_to_its_own_stream(queue):
    background = _job(1, "background")
    await queue.enqueue(background)
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    await queue.start(entry, "w")
    await queue.retry_later(entry, background, attempts=1, problem={"type": "t", "status": 500})
    assert await queue.release_due("another-model", now=time.time() + BACKOFF) == 0  # not another model's
    assert await queue.release_due(MODEL, now=time.time() + BACKOFF) == 1
    interactive, background_stream = queue.streams_for(MODEL)
    assert await queue.redis.xlen(interactive) == 0 and await queue.redis.xlen(background_stream) == 1


async def test_late_success_does_not_overwrite_a_cancel(queue):
    await queue.enqueue(_job(1))
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    await queue.start(entry, "w")
    await queue.cancel(entry.job_id)
    assert await queue.succeed(entry) == "cancelled"
    assert (await queue.get(entry.job_id)).status == "cancelled"


async def test_late_progress_does_not_overwrite_a_success_or_revive_a_job(queue):
    # The worker's monitor publishes progress beside the job itself: its last value can land after the success.
    await queue.enqueue(_job(1))
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    await queue.start(entry, "w")
    assert await queue.set_progress(entry.job_id, 0.5)
    assert (await queue.get(entry.job_id)).progress == 0.5
    await queue.succeed(entry)
    assert not await queue.set_progress(entry.job_id, 0.9)
    job = await queue.get(entry.job_id)
    assert (job.status, job.progress) == ("succeeded", 1.0)
    await queue.redis.delete(queue.keys.job(entry.job_id))  # expired meanwhile
    assert not await queue.set_progress(entry.job_id, 0.9)
    assert await queue.get(entry.job_id) is None


async def _listeners(queue: JobQueue, channel: str) -> int:
    """Subscribers of ``channel`` (on every node of a cluster)."""
    options = {"target_nodes": RedisCluster.ALL_NODES} if isinstance(queue.redis, RedisCluster) else {}
    return sum(count for _, count in await queue.redis.pubsub_numsub(channel, **options))


async def test_wait_returns_on_completion(queue):
    await queue.enqueue(_job(1))
    (entry,) = await queue.read("w", queue.streams_for(MODEL), count=1, block_ms=100)
    await queue.start(entry, "w")
    waiter = asyncio.create_task(queue.wait(entry.job_id, timeout=60))
    while await _listeners(queue, queue.keys.job_events(entry.job_id)) == 0:  # the waiter is listening
        await asyncio.sleep(0.01)
    assert not waiter.done()
    await queue.succeed(entry)
    job = await asyncio.wait_for(waiter, 60)
    assert job.status == "succeeded"
