"""``tadm worker``: one long-lived process per device. It loads its model once, registers it in Redis with a
heartbeat, reads batches of jobs from its model's streams and runs them (:mod:`service.worker_tasks`).

Lifecycle of a delivery: start (attempts + 1, status running) -> run -> store result -> store state -> ack.
SIGTERM (or SIGINT) stops reading; the batch in hand finishes and is acknowledged; then the worker
unregisters and exits. A ``kill -9`` leaves its entries pending: live workers reclaim them once the dead
worker's heartbeat has lapsed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time

from PIL import UnidentifiedImageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from model.thumbnail import ThumbnailError

from . import worker_metrics as m
from .errors import CorruptImage, ProblemError, problem_dict
from .queue import Entry, JobQueue, exhausted_problem
from .records import ImageRecords
from .registry import ModelInfo, Registry, WorkerInfo
from .rkeys import RedisKeys
from .storage import open_storage
from .storage.cache import ReconstructionCache
from .worker_tasks import BatchRunner, InputMissing, Started

logger = logging.getLogger(__name__)

MONITOR_TICK_SECONDS = 0.5  # how often progress is published and cancellations are noticed


def is_permanent(exc: BaseException) -> bool:
    """Bad input fails at once; anything else (storage, Redis, device faults) is retried with backoff."""
    if isinstance(exc, ProblemError):
        return exc.status < 500
    return isinstance(exc, (ThumbnailError, UnidentifiedImageError, InputMissing, ValueError))


def problem_for(exc: BaseException) -> dict:
    if isinstance(exc, ProblemError):
        return exc.to_problem()
    if isinstance(exc, (ThumbnailError, UnidentifiedImageError, ValueError)):
        return CorruptImage(str(exc)).to_problem()
    if isinstance(exc, InputMissing):
        return problem_dict("not-found", 404, "Not found", str(exc))
    return problem_dict("job-failed", 500, "Job failed", f"{type(exc).__name__}: {exc}")


class Worker:
    def __init__(self, settings, pipe, model: ModelInfo, redis: Redis) -> None:
        self.settings, self.pipe, self.model, self.redis = settings, pipe, model, redis
        self.name = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"
        keys = RedisKeys(settings.key_prefix)
        self.queue = JobQueue(redis, keys, max_length=settings.queue_max_length, job_ttl=settings.job_ttl_seconds,
                              max_attempts=settings.max_attempts, backoff_seconds=settings.retry_backoff_seconds)
        self.registry = Registry(redis, keys)
        self.records = ImageRecords(redis, keys)
        self.storage = open_storage(settings)
        self.cache = ReconstructionCache(self.storage, redis, keys, settings.reconstruction_cache_bytes)
        self.streams = self.queue.streams_for(model.model_id)
        self.stopping = asyncio.Event()
        self.in_flight: dict[str, Entry] = {}  # job id -> entry, renewed with every heartbeat
        self.cancelled: set[str] = set()  # read by the compute thread
        self.progress: dict[str, float] = {}  # written by the compute thread, published by the monitor
        self.runner = BatchRunner(self)

    def stop(self) -> None:
        if not self.stopping.is_set():
            logger.info("worker %s: stopping after the current batch", self.name)
        self.stopping.set()

    async def run(self) -> None:
        await self.queue.ensure_groups(self.streams)  # (a restarted Redis replays them from its AOF)
        info = WorkerInfo(self.name, self.model, time.time())
        await self.registry.heartbeat(info, self.settings.heartbeat_timeout_seconds)
        logger.info("worker %s ready: model %s (%s, %dx, trained=%s)", self.name, self.model.model_id,
                    self.model.preset, self.model.scale, self.model.trained)
        monitor = asyncio.create_task(self._monitor(info))
        try:
            while not self.stopping.is_set():
                try:
                    await self._step()
                except (RedisError, OSError) as exc:
                    # Redis restarting or unreachable: unacknowledged entries stay pending (and are reclaimed
                    # if this worker never comes back); try again shortly.
                    logger.warning("Redis unavailable (%s); retrying in 1 s", exc)
                    await asyncio.sleep(1.0)
                    if "NOGROUP" in str(exc):  # a Redis that lost its data: recreate the consumer groups
                        await self.queue.ensure_groups(self.streams)
        finally:
            monitor.cancel()
            try:
                await self.registry.unregister(self.name)
            except (RedisError, OSError):
                pass  # the heartbeat key expires on its own
            logger.info("worker %s stopped", self.name)

    async def _step(self) -> None:
        await self.queue.release_due()
        entries = await self.queue.reclaim(self.name, self.streams, self.settings.heartbeat_timeout_seconds,
                                           self.settings.worker_batch_size)
        if entries:
            logger.info("reclaimed %d stalled job(s) (their worker died or lost Redis)", len(entries))
        else:
            entries = await self.queue.read(self.name, self.streams, self.settings.worker_batch_size, 1000)
        if entries:
            await self.process(entries)

    async def process(self, entries: list[Entry]) -> None:
        try:
            await self._process(entries)
        finally:
            # Whatever happened (a Redis outage mid-batch), stop renewing these entries: an unfinished one is
            # then reclaimed after the heartbeat timeout instead of being held forever.
            for entry in entries:
                self.in_flight.pop(entry.job_id, None)

    async def _process(self, entries: list[Entry]) -> None:
        started: list[Started] = []
        for entry in entries:
            self.in_flight[entry.job_id] = entry
            status = await self.queue.start(entry, self.name)
            if status == "running":
                job = await self.queue.get(entry.job_id)
                if job is not None:
                    started.append(Started(entry, job))
                    continue
            if status == "exhausted":
                job = await self.queue.get(entry.job_id)
                logger.warning("job %s exhausted its %d attempts: dead-lettered", entry.job_id,
                               self.settings.max_attempts)
                await self.queue.fail(entry, exhausted_problem(job.attempts - 1 if job else 0), dead_letter=True)
                m.JOBS.labels(job.kind if job else "unknown", "dead_lettered").inc()
            else:  # cancelled, finished or expired meanwhile: nothing to do
                await self.queue.ack(entry)
            self.in_flight.pop(entry.job_id, None)
        m.BATCH_JOBS.observe(len(started))
        try:
            for item in (s for s in started if s.job.kind == "downscale"):
                try:
                    await self.runner.downscale(item)
                except Exception as exc:
                    await self.handle_failure(item, exc)
            upscales = [s for s in started if s.job.kind == "upscale"]
            if upscales:
                await self.runner.upscale(upscales)
        finally:
            for item in started:
                self.in_flight.pop(item.job.id, None)
                self.progress.pop(item.job.id, None)
                self.cancelled.discard(item.job.id)

    async def handle_failure(self, item: Started, exc: BaseException) -> None:
        problem = problem_for(exc)
        if is_permanent(exc):
            logger.info("job %s failed: %s", item.job.id, exc)
            await self.queue.fail(item.entry, problem, dead_letter=False)
            m.JOBS.labels(item.job.kind, "failed").inc()
            return
        attempts = (await self.queue.get(item.job.id) or item.job).attempts
        if attempts >= self.settings.max_attempts:
            logger.error("job %s failed %d times (%s): dead-lettered", item.job.id, attempts, exc)
            await self.queue.fail(item.entry, problem, dead_letter=True)
            m.JOBS.labels(item.job.kind, "dead_lettered").inc()
            return
        delay = await self.queue.retry_later(item.entry, attempts, problem)
        logger.warning("job %s attempt %d failed (%s: %s); retry in %.1f s", item.job.id, attempts,
                       type(exc).__name__, exc, delay)
        m.JOBS.labels(item.job.kind, "retried").inc()

    async def _monitor(self, info: WorkerInfo) -> None:
        """Heartbeat, renewal of held entries, progress publication and cancellation checks."""
        published: dict[str, float] = {}
        last_beat = 0.0
        while True:
            try:
                if time.monotonic() - last_beat >= self.settings.heartbeat_interval_seconds:
                    await self.registry.heartbeat(info, self.settings.heartbeat_timeout_seconds)
                    await self.queue.keep_alive(self.name, list(self.in_flight.values()))
                    last_beat = time.monotonic()
                for job_id in list(self.in_flight):
                    job = await self.queue.get(job_id)
                    if job is not None and job.status == "cancelled":
                        self.cancelled.add(job_id)
                for job_id, value in list(self.progress.items()):
                    if published.get(job_id) != value and job_id not in self.cancelled:
                        await self.queue.set_progress(job_id, value)
                        published[job_id] = value
                for job_id in [j for j in published if j not in self.progress]:
                    del published[job_id]
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: the next tick tries again
                logger.exception("worker monitor tick failed")
            await asyncio.sleep(MONITOR_TICK_SECONDS)


async def run_worker(settings) -> None:
    from .model_loading import load_model

    pipe, info = await asyncio.to_thread(load_model, settings)
    redis = Redis.from_url(settings.redis_url)
    worker = Worker(settings, pipe, info, redis)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)
    try:
        await worker.run()
    finally:
        await redis.aclose()
