"""``tadm worker``: one long-lived process per device. It loads its model once, registers it in Redis with a
heartbeat, reads batches of jobs from its model's streams and runs them (:mod:`service.worker.batch`).

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

from redis.exceptions import RedisError

from ..config import Settings
from ..queue.job_queue import Entry, exhausted_problem
from ..queue.registry import ModelInfo, WorkerInfo
from ..wiring import Services, build_services
from . import metrics
from .batch import BatchRunner, Hold, Started
from .failures import Failures
from .in_flight import InFlight
from .ingest import IngestPolicy

logger = logging.getLogger(__name__)

MONITOR_TICK_SECONDS = 0.5  # how often progress is published and cancellations are noticed
SWEEP_INTERVAL_SECONDS = 60.0  # how often a worker deletes posted thumbnails past their retention


class WorkerSetupError(Exception):
    """A setting that does not fit the model the worker loaded."""


class Worker:
    """The loop of one worker process around its :class:`BatchRunner`."""

    def __init__(self, settings: Settings, pipe, model: ModelInfo, services: Services, *,
                 hold: Hold | None = None) -> None:
        self.settings, self.model = settings, model
        try:
            tiling = settings.tiling_for(pipe.default_tiling)
        except ValueError as exc:  # a TADM_TILE_STRIDE above the model's tile size (the settings checked the rest)
            raise WorkerSetupError(
                f"TADM_TILE_SIZE / TADM_TILE_STRIDE do not fit model {model.model_id}: {exc}"
            ) from exc
        self.queue, self.registry, self.posted = services.queue, services.registry, services.posted
        self._last_sweep = float("-inf")
        self.name = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"
        self.streams = self.queue.streams_for(model.model_id)
        self.stopping = asyncio.Event()
        self.in_flight = InFlight()
        self.runner = BatchRunner(
            pipe, queue=services.queue, registry=services.registry, records=services.records,
            storage=services.storage, cache=services.cache,
            failures=Failures(services.queue, settings.max_attempts), in_flight=self.in_flight,
            tiling=tiling, policy=IngestPolicy(
                verify=settings.verify_uploads, margin_db=settings.verify_margin_db,
                max_deviation=settings.verify_thumbnail_max_deviation, colour_map=settings.verify_colour_map,
                cached_formats=settings.verify_cached_format_list, keep_originals=settings.keep_originals,
                thumbnail_format=settings.stored_thumbnail_format), max_pixels=settings.max_image_pixels,
            hold=hold,
        )

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
        await self.queue.release_due(self.model.model_id)
        if time.monotonic() - self._last_sweep >= SWEEP_INTERVAL_SECONDS:
            self._last_sweep = time.monotonic()
            await self.posted.sweep()
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
                self.in_flight.release(entry.job_id)

    async def _process(self, entries: list[Entry]) -> None:
        started: list[Started] = []
        for entry in entries:
            item = await self._start(entry)
            if item is not None:
                started.append(item)
        metrics.BATCH_JOBS.observe(len(started))
        for item in (s for s in started if s.job.kind == "downscale"):
            try:
                await self.runner.downscale(item)
            except Exception as exc:
                await self.runner.fail(item, exc)
        upscales = [s for s in started if s.job.kind == "upscale"]
        if upscales:
            await self.runner.upscale(upscales)

    async def _start(self, entry: Entry) -> Started | None:
        """Mark the entry's job running and hold it; None (and the entry settled) when there is nothing to run."""
        self.in_flight.hold(entry)
        status = await self.queue.start(entry, self.name)
        if status == "running":
            job = await self.queue.get(entry.job_id)
            if job is not None:
                return Started(entry, job)
        if status == "exhausted":
            job = await self.queue.get(entry.job_id)
            logger.warning("job %s exhausted its %d attempts: dead-lettered", entry.job_id,
                           self.settings.max_attempts)
            await self.queue.fail(entry, exhausted_problem(job.attempts - 1 if job else 0), dead_letter=True)
            metrics.JOBS.labels(job.kind if job else "unknown", "dead_lettered").inc()
        else:  # cancelled, finished or expired meanwhile: nothing to do
            await self.queue.ack(entry)
        self.in_flight.release(entry.job_id)
        return None

    async def _monitor(self, info: WorkerInfo) -> None:
        """Heartbeat, renewal of held entries, progress publication and cancellation checks."""
        published: dict[str, float] = {}
        last_beat = 0.0
        while True:
            try:
                if time.monotonic() - last_beat >= self.settings.heartbeat_interval_seconds:
                    await self.registry.heartbeat(info, self.settings.heartbeat_timeout_seconds)
                    await self.queue.keep_alive(self.name, list(self.in_flight.entries.values()))
                    last_beat = time.monotonic()
                for job_id in list(self.in_flight.entries):
                    job = await self.queue.get(job_id)
                    if job is not None and job.status == "cancelled":
                        self.in_flight.cancel(job_id)
                for job_id, value in list(self.in_flight.progress.items()):
                    if published.get(job_id) != value and not self.in_flight.is_cancelled(job_id):
                        await self.queue.set_progress(job_id, value)
                        published[job_id] = value
                for job_id in [j for j in published if j not in self.in_flight.progress]:
                    del published[job_id]
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: the next tick tries again
                logger.exception("worker monitor tick failed")
            await asyncio.sleep(MONITOR_TICK_SECONDS)


async def run_worker(settings: Settings, *, hold: Hold | None = None) -> None:
    """Load the model and serve jobs until SIGTERM or SIGINT; ``hold``: see :data:`service.worker.batch.Hold`."""
    from .loading import load_model

    pipe, info = await asyncio.to_thread(load_model, settings)
    services = build_services(settings)
    try:
        worker = Worker(settings, pipe, info, services, hold=hold)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        if settings.worker_metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.worker_metrics_port)
        await worker.run()
    finally:
        await services.close()
