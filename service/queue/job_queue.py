"""The job queue: a thin layer over Redis Streams with consumer groups (redis-py asyncio, hiredis parser).

- One stream per (model id, priority); a worker reads only its model's streams, interactive before background.
- ``enqueue`` is one Lua script: a job id already queued, running or succeeded collapses into the existing job;
  a stream at ``queue_max_length`` refuses (``QueueFull`` -> 503). Entries are deleted once acknowledged, so
  the stream length is the number of unfinished jobs.
- Job state lives in a hash with a TTL; every change is published on the job's channel (progress, SSE, waits).
- Workers renew their in-flight entries (``XCLAIM … JUSTID``) with each heartbeat, so an entry idle longer
  than the heartbeat timeout belongs to a dead worker and ``XAUTOCLAIM`` hands it to a live one.
- A transient failure is retried after an exponential backoff (a sorted set per stream moves the job back
  when due); after ``max_attempts`` deliveries the job goes to the dead-letter stream with status ``failed``.
- Every script names all the keys it touches in ``KEYS`` (never a name built inside the script), and they
  share one hash slot on a Redis Cluster (:mod:`service.redis_keys`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from ..errors import JobFailed, QueueFull
from ..redis_client import AsyncRedis
from ..redis_keys import PRIORITIES, RedisKeys, as_str
from .jobs import Job

# KEYS: job hash, stream. ARGV: max length, ttl, rerun succeeded (0/1), job id, field/value pairs...
_ENQUEUE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then return {0, status} end
if status == 'succeeded' and ARGV[3] == '0' then return {0, status} end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[1]) then return {-1, ''} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', 'job', ARGV[4])
return {1, 'queued'}
"""

# KEYS: job hash. ARGV: worker, now, max attempts. -> the job's status after the call, or 'exhausted'/'missing'.
_START = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'running' then return status end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[3]) then return 'exhausted' end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1], 'updated_at', ARGV[2])
return 'running'
"""

# KEYS: job hash. ARGV: ttl, field/value pairs... Applies only to a job still queued or running (a cancelled or
# finished job is never overwritten by a late worker).
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return status or 'missing' end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 'ok'
"""

# KEYS: job hash. ARGV: progress, now. Only a running job's progress moves: the worker's monitor publishes progress
# beside the job's own coroutine, so its last value can arrive after the success (which set 1.0) or a cancel, and
# must not overwrite it nor bring back the hash of a job that expired.
_PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updated_at', ARGV[2])
return 1
"""

# KEYS: job hash, the stream of the model taking it over. ARGV: ttl, job id, field/value pairs... A running job
# moves to another model's stream as one job (its id, state and waiters stay); its attempts start again.
_HAND_OVER = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or 'missing' end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])
return 'ok'
"""

# KEYS: a stream's retry set, the stream. ARGV: now. Moves the stream's due retries back into it.
_RELEASE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, job_id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job_id)
end
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return #due
"""

@dataclass(frozen=True)
class Entry:
    """One delivery of a job to a worker."""

    stream: str
    entry_id: str
    job_id: str


class JobQueue:
    """The queue of one service instance: the API side enqueues and follows jobs, the worker side consumes."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys, *, max_length: int = 1000,
                 job_ttl: int = 7 * 86400, max_attempts: int = 3, backoff_seconds: float = 2.0) -> None:
        self.redis, self.keys = redis, keys
        self.max_length, self.job_ttl = max_length, job_ttl
        self.max_attempts, self.backoff_seconds = max_attempts, backoff_seconds
        self._enqueue = redis.register_script(_ENQUEUE)
        self._start = redis.register_script(_START)
        self._finish = redis.register_script(_FINISH)
        self._progress = redis.register_script(_PROGRESS)
        self._hand_over = redis.register_script(_HAND_OVER)
        self._release = redis.register_script(_RELEASE_DUE)

    # -- API side --------------------------------------------------------------------------------------------
    async def enqueue(self, job: Job, *, rerun_succeeded: bool = False, retry_after: int = 2) -> tuple[Job, bool]:
        """Add ``job`` unless a job with its id is unfinished (or succeeded). Returns (the job, created)."""
        job.created_at = job.updated_at = time.time()
        fields = [x for kv in job.to_hash().items() for x in kv]
        stream = self.keys.stream(job.model_id, job.priority)
        code, _ = await self._enqueue(
            keys=[self.keys.job(job.id), stream],
            args=[self.max_length, self.job_ttl, int(rerun_succeeded), job.id, *fields],
        )
        if code == -1:
            raise QueueFull(f"the {job.priority} queue of model {job.model_id} holds {self.max_length} jobs; "
                            "retry later", retry_after=retry_after)
        if code == 1:
            await self.publish(job.id)
        current = await self.get(job.id)
        return (current or job), code == 1

    async def get(self, job_id: str) -> Job | None:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        return Job.from_hash(raw) if raw else None

    async def cancel(self, job_id: str) -> Job | None:
        """Mark a queued or running job cancelled; the worker drops it or stops at its next progress step."""
        status = await self._finish(keys=[self.keys.job(job_id)],
                                    args=[self.job_ttl, "status", "cancelled", "updated_at", time.time()])
        if as_str(status) == "ok":
            await self.publish(job_id)
        return await self.get(job_id)

    async def wait(self, job_id: str, timeout: float) -> Job | None:
        """The job once terminal, or as it is after ``timeout`` seconds."""
        job = await self.get(job_id)
        if job is None or job.terminal or timeout <= 0:
            return job
        deadline = time.monotonic() + timeout
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(self.keys.job_events(job_id))
            job = await self.get(job_id)  # subscribed first, then read: no change can fall in between
            while job is not None and not job.terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 1.0))
                job = await self.get(job_id)
        return job

    async def events(self, job_id: str, idle_timeout: float = 15.0):
        """Yield the job on subscription and after every change, until it is terminal (or vanishes); yield
        ``None`` after ``idle_timeout`` seconds without a change (the caller sends a keep-alive)."""
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(self.keys.job_events(job_id))
            last = None
            while True:
                job = await self.get(job_id)
                if job is None:
                    return
                snapshot = job.to_hash()
                if snapshot != last:
                    last = snapshot
                    yield job
                if job.terminal:
                    return
                if await pubsub.get_message(ignore_subscribe_messages=True, timeout=idle_timeout) is None:
                    yield None

    async def publish(self, job_id: str) -> None:
        job = await self.get(job_id)
        if job is not None:
            await self.redis.publish(self.keys.job_events(job_id), json.dumps(job.to_hash()))

    async def lengths(self) -> dict[str, int]:
        """Unfinished jobs per stream (for metrics and autoscaling)."""
        out = {}
        async for key in self.redis.scan_iter(match=self.keys.stream("*", "*"), _type="stream"):
            out[as_str(key)] = await self.redis.xlen(key)
        return out

    # -- worker side -----------------------------------------------------------------------------------------
    def streams_for(self, model_id: str) -> list[str]:
        return [self.keys.stream(model_id, priority) for priority in PRIORITIES]

    async def ensure_groups(self, streams: list[str]) -> None:
        for stream in streams:
            try:  # id 0: entries enqueued before any worker existed are delivered too
                await self.redis.xgroup_create(stream, self.keys.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, consumer: str, streams: list[str], count: int, block_ms: int) -> list[Entry]:
        """New entries, highest priority first; blocks up to ``block_ms`` when all streams are empty."""
        for stream in streams:  # non-blocking pass in priority order
            entries = await self._xread(consumer, [stream], count, None)
            if entries:
                return entries
        return await self._xread(consumer, streams, count, block_ms)

    async def _xread(self, consumer: str, streams: list[str], count: int, block_ms: int | None) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(self.keys.group, consumer, {s: ">" for s in streams}, count=count,
                                            block=block_ms)
        entries = []
        for stream, messages in reply or []:
            for entry_id, fields in messages:
                entries.append(Entry(as_str(stream), as_str(entry_id), as_str(fields[b"job"])))
        return entries

    async def reclaim(self, consumer: str, streams: list[str], min_idle_seconds: float, count: int) -> list[Entry]:
        """Entries of dead workers (idle longer than the heartbeat timeout) handed to ``consumer``."""
        entries = []
        for stream in streams:
            reply: Any = await self.redis.xautoclaim(stream, self.keys.group, consumer, int(min_idle_seconds * 1000),
                                                start_id="0-0", count=count)
            for entry_id, fields in reply[1]:
                if fields:  # None for an entry deleted from the stream meanwhile
                    entries.append(Entry(stream, as_str(entry_id), as_str(fields[b"job"])))
        return entries

    async def keep_alive(self, consumer: str, entries: list[Entry]) -> None:
        """Reset the idle time of entries this worker still holds, so no one reclaims them from a live worker."""
        by_stream: dict[str, list[Any]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        for stream, ids in by_stream.items():
            await self.redis.xclaim(stream, self.keys.group, consumer, 0, ids, justid=True)

    async def start(self, entry: Entry, worker: str) -> str:
        """Mark the job running. Returns ``running``, a terminal status (skip it), ``missing`` or ``exhausted``."""
        status = await self._start(keys=[self.keys.job(entry.job_id)],
                                   args=[worker, time.time(), self.max_attempts])
        status = as_str(status)
        if status == "running":
            await self.publish(entry.job_id)
        return status

    async def set_progress(self, job_id: str, progress: float) -> bool:
        """Record a running job's progress and publish it; False (nothing written) once the job is not running."""
        if not await self._progress(keys=[self.keys.job(job_id)], args=[round(progress, 4), time.time()]):
            return False
        await self.publish(job_id)
        return True

    async def succeed(self, entry: Entry) -> str:
        """Store the success, then acknowledge (a crash in between re-runs an idempotent job, loses nothing).
        What the job made is found from its parameters: the image it names, or its reconstruction's key."""
        result = await self._finish(keys=[self.keys.job(entry.job_id)], args=[
            self.job_ttl, "status", "succeeded", "progress", 1.0, "error", "null", "updated_at", time.time()])
        await self.ack(entry)
        await self.publish(entry.job_id)
        return as_str(result)

    async def hand_over(self, entry: Entry, job: Job) -> str:
        """Queue the running ``job`` again on the streams of ``job.model_id`` (another model: the next scale of a
        ``scale=auto`` upload), then acknowledge this delivery. Returns ``ok``, or the status that prevented it
        (``cancelled`` when its image was deleted meanwhile)."""
        job.status, job.attempts, job.updated_at = "queued", 0, time.time()
        fields = [x for kv in job.to_hash().items() for x in kv]
        result = as_str(await self._hand_over(
            keys=[self.keys.job(job.id), self.keys.stream(job.model_id, job.priority)],
            args=[self.job_ttl, job.id, *fields]))
        await self.ack(entry)
        await self.publish(job.id)
        return result

    async def fail(self, entry: Entry, problem: dict, *, dead_letter: bool) -> None:
        """Terminal failure; ``dead_letter`` also files the job in the dead-letter stream for inspection."""
        await self._finish(keys=[self.keys.job(entry.job_id)], args=[
            self.job_ttl, "status", "failed", "error", json.dumps(problem), "updated_at", time.time()])
        if dead_letter:
            await self.redis.xadd(self.keys.dead_letter, {"job": entry.job_id, "stream": entry.stream,
                                                          "error": json.dumps(problem)})
        await self.ack(entry)
        await self.publish(entry.job_id)

    async def retry_later(self, entry: Entry, job: Job, attempts: int, problem: dict) -> float:
        """Back to ``queued`` with the error kept; re-enters its stream after an exponential backoff."""
        delay = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        await self._finish(keys=[self.keys.job(entry.job_id)], args=[
            self.job_ttl, "status", "queued", "error", json.dumps(problem), "updated_at", time.time()])
        due = {entry.job_id: time.time() + delay}
        await self.redis.zadd(self.keys.delayed(job.model_id, job.priority), due)
        await self.ack(entry)
        await self.publish(entry.job_id)
        return delay

    async def release_due(self, model_id: str, now: float | None = None) -> int:
        """Move the model's retries whose backoff has passed by ``now`` (default: the present) back into their
        streams."""
        moved = 0
        for priority in PRIORITIES:
            moved += int(await self._release(
                keys=[self.keys.delayed(model_id, priority), self.keys.stream(model_id, priority)],
                args=[time.time() if now is None else now]))
        return moved

    async def ack(self, entry: Entry) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(entry.stream, self.keys.group, entry.entry_id)
            pipe.xdel(entry.stream, entry.entry_id)
            await pipe.execute()

    async def dead_letters(self) -> list[dict]:
        entries: Any = await self.redis.xrange(self.keys.dead_letter)
        return [{as_str(k): as_str(v) for k, v in fields.items()} for _, fields in entries]


def exhausted_problem(attempts: int) -> dict:
    """The error of a job dead-lettered because it kept being delivered without finishing."""
    return JobFailed(f"the job was delivered {attempts} times without finishing (its worker died or it kept "
                     "failing); it was moved to the dead-letter stream").to_problem()

