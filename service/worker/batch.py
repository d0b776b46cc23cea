"""What a worker does with a batch of started jobs: the downscale and upscale stages, around the pipeline.

Model calls run in a thread (``asyncio.to_thread``) so that the worker's event loop keeps its heartbeat,
progress and cancellation checks going while torch computes. Upscale jobs of one batch are micro-batched:
their latent tiles go through the UNet together (``pipe.denoise([z1, z2, …], tiling)``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from model.thumbnail import Thumbnail, ThumbnailMismatchError, plain_upscale
from model.tiling import Tiling

from ..errors import NotFound, ThumbnailMismatch, TooManyPixels
from ..media import encode_image
from ..queue.job_queue import Entry, JobQueue
from ..queue.jobs import DownscaleParams, Job, UpscaleParams
from ..queue.registry import Registry
from ..storage import Storage, reconstruction_key
from ..storage.cache import ReconstructionCache
from ..storage.records import ImageRecords
from . import metrics
from .failures import Failures
from .in_flight import InFlight
from .ingest import Ingest, IngestPolicy

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Every job of the running batch was cancelled: stop computing."""


# Called in the compute thread after every UNet batch with the batch's job ids and a check of whether they are
# all cancelled; it may wait there, with the jobs running and their progress reported. The end-to-end tests
# install one to act on a job that is surely mid-run; a deployment has none.
Hold = Callable[[list[str], Callable[[], bool]], None]


@dataclass
class Started:
    """A delivery whose job this worker has marked running."""

    entry: Entry
    job: Job


@dataclass
class PreparedUpscale:
    """An upscale job whose thumbnail is loaded and fits the model: ready for the shared tile loop."""

    item: Started
    params: UpscaleParams
    thumbnail: Thumbnail
    result_key: str


class BatchRunner:
    """Runs started jobs on one pipeline, with the collaborators it is given; the worker's loop
    (:mod:`service.worker.process`) reads the batches and owns what happens around them."""

    def __init__(self, pipe, *, queue: JobQueue, registry: Registry, records: ImageRecords, storage: Storage,
                 cache: ReconstructionCache, failures: Failures, in_flight: InFlight, tiling: Tiling,
                 policy: IngestPolicy, max_pixels: int, hold: Hold | None = None) -> None:
        self.pipe = pipe
        self.queue, self.records, self.storage, self.cache = queue, records, storage, cache
        self.failures, self.in_flight = failures, in_flight
        self.tiling, self.max_pixels = tiling, max_pixels
        self.hold = hold
        self.ingest = Ingest(pipe, self.reconstruct_one, policy=policy, queue=queue, registry=registry,
                             records=records, storage=storage, cache=cache, in_flight=in_flight)

    async def fail(self, item: Started, exc: BaseException) -> None:
        await self.failures.handle(item.entry, item.job, exc)

    # -- downscale ------------------------------------------------------------------------------------------
    async def downscale(self, item: Started) -> None:
        try:
            await self.ingest.run(item)
        except JobCancelled:  # its image was deleted while it was being verified
            logger.info("job %s was cancelled while it ran", item.job.id)
            params = item.job.params
            assert isinstance(params, DownscaleParams)
            await asyncio.to_thread(self.storage.delete, params.input_key)
            await self.queue.ack(item.entry)
            metrics.JOBS.labels("downscale", "cancelled").inc()

    def reconstruct_one(self, thumbnail: Thumbnail, job_id: str, original: Image.Image | None = None,
                        bicubic: float | None = None) -> tuple[Thumbnail, Image.Image]:
        """In the compute thread: the reconstruction ``GET /full`` would give for ``thumbnail`` (a downscale job
        verifying its thumbnail); raises :class:`JobCancelled` when the job is cancelled meanwhile. With the
        ``original``, the thumbnail comes back with the colour map fitted to it where one helps
        (:mod:`model.colour_map`; ``bicubic``: the original's bicubic PSNR-Y where measured already), and the
        reconstruction is the one ``GET /full`` gives for that thumbnail."""
        if thumbnail.plain:
            return thumbnail, plain_upscale(thumbnail)
        latent = self.pipe.thumbnail_to_latent(thumbnail)
        (result,) = self.pipe.denoise([latent], self.tiling, self._progress([job_id]))
        if original is not None:
            from model.colour_map import finish_choosing_colour_map  # torch: imported where the model runs

            return finish_choosing_colour_map(self.pipe, thumbnail, result.latent, original, bicubic)
        return thumbnail, self.pipe.latent_to_image(result.latent, thumbnail.original_size, thumbnail)

    # -- upscale ---------------------------------------------------------------------------------------------
    async def upscale(self, items: list[Started]) -> None:
        """Reconstruct several thumbnails with shared UNet calls; per-job errors fail only their job."""
        ready: list[PreparedUpscale] = []
        for item in items:
            prepared = await self._prepare(item)
            if prepared is not None:
                ready.append(prepared)
        if not ready:
            return
        try:
            images = await asyncio.to_thread(self._upscale_sync, ready)
        except JobCancelled:
            for prepared in ready:
                await self._drop_cancelled(prepared.item)
            return
        except Exception as exc:
            for prepared in ready:
                await self.fail(prepared.item, exc)
            return
        for prepared, image in zip(ready, images, strict=True):
            if image is None or self.in_flight.is_cancelled(prepared.item.job.id):
                await self._drop_cancelled(prepared.item)
                continue
            try:
                data = await asyncio.to_thread(encode_image, image, prepared.params.format)
                await self.cache.put(prepared.result_key, data)
                status = await self.queue.succeed(prepared.item.entry)
                if status == "cancelled":
                    # Cancelled after the last check (its image deleted): the result must not stay servable.
                    logger.info("job %s was cancelled while it ran: removing its result", prepared.item.job.id)
                    await self.cache.remove(prepared.result_key)
                    metrics.JOBS.labels("upscale", "cancelled").inc()
                    continue
                metrics.JOBS.labels("upscale", "succeeded").inc()
            except Exception as exc:
                await self.fail(prepared.item, exc)

    async def _prepare(self, item: Started) -> PreparedUpscale | None:
        """The job's thumbnail, checked against the model; None when the job is done or failed here."""
        params = item.job.params
        assert isinstance(params, UpscaleParams)
        key = reconstruction_key(item.job.model_id, params.thumbnail_sha, params.format)
        if await asyncio.to_thread(self.storage.exists, key):  # done before (or by a reclaimed twin)
            await self.queue.succeed(item.entry)
            return None
        try:
            data = await asyncio.to_thread(self.storage.get, params.thumbnail_key)
            if data is None:
                raise NotFound("the thumbnail to reconstruct is no longer stored")
            thumb = Thumbnail.from_bytes(data)
            thumb.check_compatible(self.pipe.model_id, self.pipe.scale)
            width, height = thumb.original_size
            if width * height > self.max_pixels:  # the API refuses these; a job queued before it did is refused here
                raise TooManyPixels(f"the thumbnail reconstructs {width}x{height} pixels; the limit is "
                                    f"{self.max_pixels}")
        except ThumbnailMismatchError as exc:
            await self.fail(item, ThumbnailMismatch(str(exc)))
            return None
        except Exception as exc:
            await self.fail(item, exc)
            return None
        return PreparedUpscale(item, params, thumb, key)

    async def _drop_cancelled(self, item: Started) -> None:
        await self.queue.ack(item.entry)
        metrics.JOBS.labels("upscale", "cancelled").inc()

    def _progress(self, job_ids: list[str]):
        """The tile loop's progress callback for these jobs: reports, waits at the hold (when one is installed),
        stops when all are cancelled."""
        def all_cancelled() -> bool:
            return all(self.in_flight.is_cancelled(job_id) for job_id in job_ids)

        def progress(done: int, total: int) -> None:
            # Tiles of all jobs share batches, so every job of the batch advances together.
            for job_id in job_ids:
                self.in_flight.report(job_id, 0.1 + 0.8 * done / total)
            if self.hold is not None:
                self.hold(job_ids, all_cancelled)
            if all_cancelled():
                raise JobCancelled

        return progress

    def _upscale_sync(self, ready: list[PreparedUpscale]) -> list:
        """In the compute thread: plain thumbnails by bicubic upsampling, the others through the model. PIL
        images in the order of ``ready``; None for a job cancelled meanwhile."""
        by_model = [prepared for prepared in ready if not prepared.thumbnail.plain]
        made = iter(self._model_upscale_sync(by_model) if by_model else [])
        return [plain_upscale(prepared.thumbnail) if prepared.thumbnail.plain else next(made)
                for prepared in ready]

    def _model_upscale_sync(self, ready: list[PreparedUpscale]) -> list:
        """Latents, the shared tile loop, decoding."""
        pipe, tiling = self.pipe, self.tiling
        job_ids = [prepared.item.job.id for prepared in ready]
        t0 = time.perf_counter()
        latents = [pipe.thumbnail_to_latent(prepared.thumbnail) for prepared in ready]
        t1 = time.perf_counter()
        metrics.STAGE_SECONDS.labels("thumbnail_to_latent").observe(t1 - t0)

        results = pipe.denoise(latents, tiling, self._progress(job_ids))
        t2 = time.perf_counter()
        metrics.STAGE_SECONDS.labels("denoise").observe(t2 - t1)
        tiles = sum(len(result.tiles) for result in results)
        metrics.TILES.inc(tiles)
        metrics.UNET_BATCH.observe(min(tiles, tiling.tile_batch_size))
        images: list = []
        for job_id, prepared, result in zip(job_ids, ready, results, strict=True):
            if self.in_flight.is_cancelled(job_id):
                images.append(None)
                continue
            images.append(pipe.latent_to_image(result.latent, prepared.thumbnail.original_size, prepared.thumbnail))
        metrics.STAGE_SECONDS.labels("decode").observe(time.perf_counter() - t2)
        return images
