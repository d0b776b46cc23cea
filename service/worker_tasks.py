"""What a worker does with a batch of started jobs: the downscale and upscale stages, around the pipeline.

Model calls run in a thread (``asyncio.to_thread``) so that the worker's event loop keeps its heartbeat,
progress and cancellation checks going while torch computes. Upscale jobs of one batch are micro-batched:
their latent tiles go through the UNet together (``pipe.denoise([z1, z2, …])``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from model.thumbnail import Thumbnail, ThumbnailMismatchError

from . import worker_metrics as m
from .errors import CorruptImage, ThumbnailMismatch
from .images import decode_image, encode_image
from .jobs import Job
from .queue import Entry
from .records import ImageRecord, now
from .storage import reconstruction_key, sha256_hex, thumbnail_key

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Every job of the running batch was cancelled: stop computing."""


class InputMissing(Exception):
    """The job's input is gone from storage (deleted meanwhile): a permanent failure."""


@dataclass
class Started:
    entry: Entry
    job: Job


class BatchRunner:
    """Runs started jobs on one pipeline; the worker (:mod:`service.worker`) owns the loop around it."""

    def __init__(self, worker) -> None:
        self.w = worker
        self.pipe = worker.pipe
        self.settings = worker.settings

    # -- downscale -------------------------------------------------------------------------------------------
    async def downscale(self, item: Started) -> None:
        p = item.job.params
        image_id = p["image_id"]
        if await self.w.records.get(image_id) is None:  # a re-delivery after a crash may find it done
            data = await asyncio.to_thread(self.w.storage.get, p["input_key"])
            if data is None:
                raise InputMissing(f"the original of image {image_id} is no longer stored")
            t0 = time.perf_counter()
            thumb = await asyncio.to_thread(self._downscale_sync, data)
            m.STAGE_SECONDS.labels("downscale").observe(time.perf_counter() - t0)
            png = thumb.to_png()
            sha = sha256_hex(png)
            await asyncio.to_thread(self.w.storage.put, thumbnail_key(sha), png)
            w, h = thumb.original_size
            record = ImageRecord(id=image_id, width=w, height=h, scale=thumb.scale, model_id=thumb.model_id or "",
                                 thumbnail_key=thumbnail_key(sha), thumbnail_sha=sha,
                                 original_bytes=int(p["original_bytes"]), thumbnail_bytes=len(png), created_at=now())
            await self.w.records.save(record)
        if not self.settings.keep_originals:  # the thumbnail and its record are stored: the original can go
            await asyncio.to_thread(self.w.storage.delete, p["input_key"])
        await self.w.queue.succeed(item.entry, image_id=image_id)
        m.JOBS.labels("downscale", "succeeded").inc()

    def _downscale_sync(self, data: bytes) -> Thumbnail:
        image = decode_image(data)
        try:
            return self.pipe.downscale(image)
        except ValueError as exc:  # the pipeline's own input checks (too small, …)
            raise CorruptImage(str(exc)) from exc

    # -- upscale ---------------------------------------------------------------------------------------------
    async def upscale(self, items: list[Started]) -> None:
        """Reconstruct several thumbnails with shared UNet calls; per-job errors fail only their job."""
        ready: list[tuple[Started, Thumbnail, str]] = []
        for item in items:
            p = item.job.params
            key = reconstruction_key(item.job.model_id, p["thumbnail_sha"], p["format"])
            if await asyncio.to_thread(self.w.storage.exists, key):  # done before (or by a reclaimed twin)
                await self.w.queue.succeed(item.entry, result_key=key)
                continue
            try:
                data = await asyncio.to_thread(self.w.storage.get, p["thumbnail_key"])
                if data is None:
                    raise InputMissing("the thumbnail to reconstruct is no longer stored")
                thumb = Thumbnail.from_png(data)
                thumb.check_compatible(self.pipe.model_id, self.pipe.scale)
            except ThumbnailMismatchError as exc:
                await self.w.handle_failure(item, ThumbnailMismatch(str(exc)))
                continue
            except Exception as exc:
                await self.w.handle_failure(item, exc)
                continue
            ready.append((item, thumb, key))
        if not ready:
            return
        job_ids = [item.job.id for item, _, _ in ready]
        try:
            images = await asyncio.to_thread(self._upscale_sync, [t for _, t, _ in ready], job_ids)
        except JobCancelled:
            for item, _, _ in ready:
                await self.w.queue.ack(item.entry)
                m.JOBS.labels("upscale", "cancelled").inc()
            return
        except Exception as exc:
            for item, _, _ in ready:
                await self.w.handle_failure(item, exc)
            return
        for (item, _, key), image in zip(ready, images, strict=True):
            if image is None or item.job.id in self.w.cancelled:
                await self.w.queue.ack(item.entry)
                m.JOBS.labels("upscale", "cancelled").inc()
                continue
            try:
                data = await asyncio.to_thread(encode_image, image, item.job.params["format"])
                await self.w.cache.put(key, data)
                await self.w.queue.succeed(item.entry, result_key=key)
                m.JOBS.labels("upscale", "succeeded").inc()
            except Exception as exc:
                await self.w.handle_failure(item, exc)

    def _upscale_sync(self, thumbs: list[Thumbnail], job_ids: list[str]):
        pipe, s = self.pipe, self.settings
        t0 = time.perf_counter()
        latents = [pipe.thumbnail_to_latent(t) for t in thumbs]
        t1 = time.perf_counter()
        m.STAGE_SECONDS.labels("thumbnail_to_latent").observe(t1 - t0)

        def progress(done: int, total: int) -> None:
            # Tiles of all jobs share batches, so every job of the batch advances together.
            if all(j in self.w.cancelled for j in job_ids):
                raise JobCancelled
            for j in job_ids:
                self.w.progress[j] = 0.1 + 0.8 * done / total

        results = pipe.denoise(latents, s.tile_size, s.tile_stride, s.tile_batch_size, progress)
        t2 = time.perf_counter()
        m.STAGE_SECONDS.labels("denoise").observe(t2 - t1)
        tiles = sum(len(r.tiles) for r in results)
        m.TILES.inc(tiles)
        m.UNET_BATCH.observe(min(tiles, s.tile_batch_size))
        images: list = []  # PIL images; None for a job cancelled meanwhile
        for job_id, thumb, result in zip(job_ids, thumbs, results, strict=True):
            if job_id in self.w.cancelled:
                images.append(None)
                continue
            images.append(pipe.latent_to_image(result.latent, thumb.original_size))
        m.STAGE_SECONDS.labels("decode").observe(time.perf_counter() - t2)
        return images
