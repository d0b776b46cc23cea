"""The downscale job: an uploaded original becomes a verified thumbnail, an image record and a first cached
reconstruction, and only then is the original deleted.

upload -> original stored -> downscale -> reconstruct once and measure (:mod:`.verify`) -> the model's thumbnail
or a plain one -> the thumbnail stored -> the verifying reconstruction cached as the first ``/full`` -> the
record saved (the image exists) -> the original deleted. A worker that dies anywhere before the record is saved
leaves the original in place and the job is redelivered; one that dies after finds the record and only
finishes the clean-up. A ``scale=auto`` job whose thumbnail misses its target is handed to the next scale's
model as the same job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageOps

from model.plain_rule import bicubic_psnr_y
from model.thumbnail import Thumbnail

from ..errors import CorruptImage, NotFound
from ..media import decode_image, encode_image
from ..queue.job_queue import JobQueue
from ..queue.jobs import DownscaleParams
from ..queue.registry import Registry
from ..storage import Storage, reconstruction_key, sha256_hex, thumbnail_key
from ..storage.cache import ReconstructionCache
from ..storage.records import ImageRecord, ImageRecords, now
from . import metrics
from .verify import (
    Target,
    Verified,
    candidate,
    keep_or_fall_back,
    looks_like_a_thumbnail,
    verify_plain,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestPolicy:
    """The settings an ingest follows (``TADM_VERIFY_*``, ``TADM_KEEP_ORIGINALS``)."""

    verify: bool = True
    margin_db: float = 0.5
    max_deviation: float = 48.0
    colour_map: bool = True  # TADM_VERIFY_COLOUR_MAP: the verifying reconstruction fits the thumbnail's colour map
    cached_formats: tuple[str, ...] = ("png", "webp")
    keep_originals: bool = False
    thumbnail_format: str = "png"  # TADM_THUMBNAIL_FORMAT, decided (Settings.stored_thumbnail_format)


@dataclass(frozen=True)
class Outcome:
    """What the compute thread made: the thumbnail to store, and its measured reconstruction when verified."""

    thumbnail: Thumbnail
    verified: Verified | None = None
    next_scale: int | None = None  # scale=auto: the target was missed and this scale comes next


class Ingest:
    """Runs downscale jobs on one pipeline. ``reconstruct(thumbnail, job_id, original, bicubic)`` is the worker's
    ``GET /full`` path for one thumbnail (its tiles, progress and cancellation checks), run in the compute thread;
    given the ``original`` it also fits the thumbnail's colour map (:mod:`model.colour_map`; ``bicubic``: the
    photo's bicubic PSNR-Y, measured once here) and returns the thumbnail to store with the reconstruction."""

    def __init__(self, pipe, reconstruct, *, policy: IngestPolicy, queue: JobQueue, registry: Registry,
                 records: ImageRecords, storage: Storage, cache: ReconstructionCache, in_flight) -> None:
        self.pipe, self.reconstruct, self.policy = pipe, reconstruct, policy
        self.queue, self.registry, self.records = queue, registry, records
        self.storage, self.cache, self.in_flight = storage, cache, in_flight

    async def run(self, item) -> None:
        params = item.job.params
        assert isinstance(params, DownscaleParams)
        made: ImageRecord | None = None
        if await self.records.get(params.image_id) is None:  # a re-delivery after a crash may find it done
            data = await asyncio.to_thread(self.storage.get, params.input_key)
            if data is None:
                raise NotFound(f"the original of image {params.image_id} is no longer stored")
            t0 = time.perf_counter()
            outcome = await asyncio.to_thread(self._compute, data, params, item.job.id)
            metrics.STAGE_SECONDS.labels("ingest").observe(time.perf_counter() - t0)
            if outcome.next_scale is not None:
                if await self._hand_over(item, params, outcome.next_scale):
                    return
                outcome = await asyncio.to_thread(self._plain_instead, data, outcome)
            made = await self._store(params, outcome)
        if not self.policy.keep_originals:  # the image is final: the original can go
            await asyncio.to_thread(self.storage.delete, params.input_key)
        # "cancelled": its image was deleted while it ran. (A twin that finished first, after a reclaim, leaves
        # "succeeded": its image is the same one and stays.)
        if await self.queue.succeed(item.entry) == "cancelled":
            await self._take_back_image(item, params, made)
            return
        metrics.JOBS.labels("downscale", "succeeded").inc()

    # -- the compute thread ----------------------------------------------------------------------------------
    def _compute(self, data: bytes, params: DownscaleParams, job_id: str) -> Outcome:
        original = _rgb(decode_image(data))
        pixels = np.asarray(original)
        # Bicubic's PSNR-Y from a plain thumbnail, measured once for all that reads it: the model's plain rule and
        # the verification.
        needed = self.pipe.plain_rule is not None or self.policy.verify or params.auto
        bicubic = bicubic_psnr_y(pixels, self.pipe.scale) if needed else None
        try:
            learned = self.pipe.downscale(original, bicubic=bicubic)
        except ValueError as exc:  # the pipeline's own input checks (too small, …)
            raise CorruptImage(str(exc)) from exc
        self.in_flight.report(job_id, 0.1)
        if bicubic is None:  # no rule, and uploads are not verified
            return Outcome(learned)
        if learned.plain and not params.auto:
            # The model's plain rule chose classical resampling: its reconstruction is bicubic's, measured without
            # running the model, and recorded even when uploads are not verified (the record says it is plain).
            return Outcome(*_verified(verify_plain(pixels, learned.scale, bicubic)))
        if not (self.policy.verify or params.auto):
            return Outcome(learned)

        fitted_to = original if self.policy.colour_map else None

        def reconstruct(thumbnail: Thumbnail) -> tuple[Thumbnail, Image.Image]:
            return self.reconstruct(thumbnail, job_id, fitted_to, bicubic)  # measured above: not again

        if not params.auto:
            return Outcome(*_verified(keep_or_fall_back(pixels, learned, reconstruct, self.policy.margin_db,
                                                        self.policy.max_deviation, bicubic)))
        measured = candidate(pixels, learned, reconstruct, self.policy.max_deviation, bicubic)
        if (Target(params.min_psnr_y, params.min_ssimulacra2).met_by(measured.quality)
                and looks_like_a_thumbnail(measured, self.policy.max_deviation)):
            return Outcome(*_verified(measured))
        if params.next_scales:
            return Outcome(learned, measured, next_scale=params.next_scales[0])
        return Outcome(*_verified(verify_plain(pixels, learned.scale, measured.quality.bicubic_psnr_y)))

    def _plain_instead(self, data: bytes, outcome: Outcome) -> Outcome:
        """scale=auto with no live model for the next scale: this scale's plain thumbnail."""
        assert outcome.verified is not None
        pixels = np.asarray(_rgb(decode_image(data)))
        return Outcome(*_verified(verify_plain(pixels, outcome.thumbnail.scale,
                                               outcome.verified.quality.bicubic_psnr_y)))

    # -- storing ---------------------------------------------------------------------------------------------
    async def _hand_over(self, item, params: DownscaleParams, scale: int) -> bool:
        """Queue the job for the model of ``scale``; False when no live worker serves that scale."""
        model = await self.registry.model_for_scale(scale)
        if model is None:
            logger.warning("job %s: no live worker serves scale %d; storing the plain thumbnail", item.job.id, scale)
            return False
        job = replace(item.job, model_id=model.model_id,
                      params=replace(params, next_scales=tuple(params.next_scales[1:])))
        status = await self.queue.hand_over(item.entry, job)
        logger.info("job %s missed its target at %s: handed to model %s (%s)", item.job.id,
                    self.pipe.scale, model.model_id, status)
        metrics.JOBS.labels("downscale", "handed_over").inc()
        return True

    async def _store(self, params: DownscaleParams, outcome: Outcome) -> ImageRecord:
        """Thumbnail, first reconstructions, record: in that order, so an existing record means a whole image."""
        stored_format = self.policy.thumbnail_format
        stored = await asyncio.to_thread(outcome.thumbnail.to_bytes, stored_format)
        sha = sha256_hex(stored)
        await asyncio.to_thread(self.storage.put, thumbnail_key(sha, stored_format), stored)
        quality = None
        if outcome.verified is not None:
            quality = outcome.verified.quality.as_dict()
            for fmt in self.policy.cached_formats:  # the first GET /full needs no second run
                encoded = await asyncio.to_thread(encode_image, outcome.verified.reconstruction, fmt)
                await self.cache.put(reconstruction_key(self.pipe.model_id, sha, fmt), encoded)
            if outcome.thumbnail.plain:
                metrics.FALLBACKS.inc()
            if outcome.verified.quality.thumbnail_pulled_in:
                metrics.PULLED_IN.inc()
        width, height = outcome.thumbnail.original_size
        record = ImageRecord(id=params.image_id, width=width, height=height, scale=outcome.thumbnail.scale,
                             model_id=self.pipe.model_id, thumbnail_key=thumbnail_key(sha, stored_format), thumbnail_sha=sha,
                             original_bytes=params.original_bytes, thumbnail_bytes=len(stored), created_at=now(),
                             original_sha256=params.original_sha256, quality=quality, auto=params.auto)
        await self.records.save(record)
        return record

    async def _take_back_image(self, item, params: DownscaleParams, made: ImageRecord | None) -> None:
        """The job was cancelled while it ran (its image deleted): remove what it stored."""
        logger.info("job %s was cancelled while it ran: removing the image it stored", item.job.id)
        await asyncio.to_thread(self.storage.delete, params.input_key)
        if made is not None and await self.records.delete(made) == 0:
            await asyncio.to_thread(self.storage.delete, made.thumbnail_key)
        metrics.JOBS.labels("downscale", "cancelled").inc()


def _verified(verified: Verified) -> tuple[Thumbnail, Verified]:
    return verified.thumbnail, verified


def _rgb(image: Image.Image) -> Image.Image:
    """Upright RGB, as the pipeline reads it: the reconstruction is measured against what was downscaled."""
    return ImageOps.exif_transpose(image).convert("RGB")
