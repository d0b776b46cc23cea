"""What the API's requests do, apart from HTTP: one function per use case, over the process's
:class:`~service.wiring.Services`. Routes parse and check the request, call one of these and turn its result
into a response; the functions raise the problems of :mod:`service.errors`.

A use case that starts a job waits for it up to ``wait`` seconds and returns what it has then: the result, or
the job (queued, running, failed or cancelled) for the route to answer 202 or with the job's problem.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from model.thumbnail import SUPPORTED_SCALES, Thumbnail

from ..errors import InvalidRequest, NotFound, NotReady, QueueFull
from ..media import decode_image, inspect_image
from ..queue.jobs import DownscaleParams, Job, UpscaleParams, downscale_job, upscale_job
from ..queue.registry import ModelInfo
from ..storage import (
    original_key,
    reconstruction_key,
    sha256_hex,
    thumbnail_key_format,
    uploaded_thumbnail_key,
)
from ..storage.records import ImageRecord, image_id_for
from ..wiring import Services
from .deletion import IMAGE_ID
from .thumbnails import GivenMetadata, accept_thumbnail
from .variants import width_variant

_JOB_ID = re.compile(r"^[0-9a-f]{24}$")


# -- images ---------------------------------------------------------------------------------------------------
async def find_image(services: Services, image_id: str) -> ImageRecord:
    record = await services.records.get(image_id) if IMAGE_ID.match(image_id) else None
    if record is None:
        raise NotFound(f"no image with id {image_id!r}")
    return record


async def newest_images(services: Services, limit: int) -> list[ImageRecord]:
    return await services.records.newest(min(limit, services.settings.list_limit_max))


@dataclass(frozen=True)
class QualityTarget:
    """``scale=auto``: what the stored thumbnail's reconstruction must reach (an unset figure is not asked)."""

    min_psnr_y: float | None = None
    min_ssimulacra2: float | None = None


async def upload_image(services: Services, data: bytes, *, scale: int | None, priority: str, wait: float,
                       target: QualityTarget | None = None) -> ImageRecord | Job:
    """Check an upload, store it and enqueue its downscale; the record once the image is final (at once for a
    duplicate upload), else the job. ``scale`` None is ``scale=auto``: the most compact thumbnail whose
    reconstruction meets ``target``, 32x first."""
    settings = services.settings
    smallest = min(SUPPORTED_SCALES) if scale is None else scale
    inspect_image(data, max_pixels=settings.max_image_pixels, min_side=smallest)  # header only: 413/415/422 first
    await asyncio.to_thread(decode_image, data)  # a truncated or corrupt file is refused now, not in a job
    sha = sha256_hex(data)
    if scale is None:
        models = await _models_for_auto(services)
        target = target or QualityTarget()
        identity = ":".join(["auto", *(m.model_id for m in models), str(target.min_psnr_y),
                             str(target.min_ssimulacra2)])
        image_id = image_id_for(sha, identity, 0)
        extra: dict[str, Any] = {"auto": True, "next_scales": tuple(m.scale for m in models[1:]),
                 "min_psnr_y": target.min_psnr_y, "min_ssimulacra2": target.min_ssimulacra2}
        model = models[0]
    else:
        model = await _model_for_scale(services, scale)
        image_id, extra = image_id_for(sha, model.model_id, scale), {}
    record = await services.records.get(image_id)
    if record is not None:  # a duplicate upload: the same image, no second job
        return record
    key = original_key(image_id)
    await asyncio.to_thread(services.storage.put, key, data)
    params = DownscaleParams(image_id=image_id, input_key=key, original_bytes=len(data), original_sha256=sha,
                             **extra)
    job = downscale_job(params, original_sha=sha, model_id=model.model_id, scale=model.scale,
                        priority=priority, identity_extra={"image_id": image_id} if scale is None else None)
    try:
        # rerun_succeeded: the record is missing, so a succeeded job of a since-deleted image must run again
        job, _ = await services.queue.enqueue(job, rerun_succeeded=True, retry_after=settings.retry_after_seconds)
    except QueueFull:
        if await services.queue.get(job.id) is None:  # no job will read the original: a refusal stores nothing
            await asyncio.to_thread(services.storage.delete, key)
        raise
    await services.records.set_upload_job(image_id, job.id, settings.job_ttl_seconds)
    job = await services.queue.wait(job.id, wait) or job  # (None only if the job expired meanwhile)
    if job.status == "succeeded":
        return await find_image(services, image_id)
    return job


async def _models_for_auto(services: Services) -> list[ModelInfo]:
    """The live models a ``scale=auto`` upload tries, most compact first; 503 when none is live."""
    since = await services.started()
    models = [await services.registry.model_for_scale(s, since) for s in sorted(SUPPORTED_SCALES, reverse=True)]
    live = [m for m in models if m is not None]
    if not live:
        raise NotReady("no live worker: the image cannot be downscaled now",
                       retry_after=services.settings.retry_after_seconds)
    return live


async def store_totals(services: Services) -> dict:
    """The store-wide totals of ``GET /v1/stats``."""
    totals = await services.records.totals()
    original, stored = totals["original_bytes"], totals["stored_bytes"]
    return {**totals, "saving": round(1 - stored / original, 6) if original else 0.0}


async def _model_for_scale(services: Services, scale: int) -> ModelInfo:
    """The model that makes new thumbnails at ``scale``; 503 when no worker is live, 422 when none serves it.
    Live as ``/readyz`` counts it (renewed since this process started), so the two never disagree."""
    since = await services.started()
    model = await services.registry.model_for_scale(scale, since)
    if model is not None:
        return model
    live = await services.registry.live_workers(since)
    if not live:
        raise NotReady("no live worker: the image cannot be downscaled now",
                       retry_after=services.settings.retry_after_seconds)
    served = sorted({worker.model.scale for worker in live})
    raise InvalidRequest(f"no live worker serves scale {scale}; served scales: {served}")


async def read_thumbnail(services: Services, record: ImageRecord, fmt: str | None = None) -> bytes:
    """The thumbnail's bytes as stored, or in ``fmt`` (png, webp, jxl) converted from them. This process keeps
    both in memory: the stored bytes under their key (their content's hash), a conversion under that key and
    its format (the same stored bytes always convert to the same bytes)."""
    if fmt is None or fmt == thumbnail_key_format(record.thumbnail_key):
        return await _stored_thumbnail(services, record)
    key = f"{record.thumbnail_key} as {fmt}"
    converted: bytes | None = services.memory.get(key)
    if converted is None:
        stored = await _stored_thumbnail(services, record)
        converted = await asyncio.to_thread(lambda: Thumbnail.from_bytes(stored).to_bytes(fmt))
        services.memory.put(key, converted)
    return converted


async def _stored_thumbnail(services: Services, record: ImageRecord) -> bytes:
    data: bytes | None = services.memory.get(record.thumbnail_key)
    if data is None:
        data = await asyncio.to_thread(services.storage.get, record.thumbnail_key)
        if data is None:
            raise NotFound(f"the thumbnail of image {record.id} is missing from storage")
        services.memory.put(record.thumbnail_key, data)
    return data


# -- reconstructions ------------------------------------------------------------------------------------------
async def reconstruct_image(services: Services, image_id: str, *, fmt: str, priority: str, wait: float,
                            width: int | None = None) -> bytes | Job:
    """The reconstruction of a stored image (its ``width`` variant when given), from the cache or by a job."""
    record = await find_image(services, image_id)
    # The record proves the image exists: a copy in this process's memory may be served without asking Redis
    # whether the cache still lists it (the common cached read then costs one round trip, the record's).
    cached = await services.cache.get(reconstruction_key(record.model_id, record.thumbnail_sha, fmt),
                                      owner_exists=True)
    result: bytes | Job
    if cached is not None:
        result = cached
    else:
        params = UpscaleParams(thumbnail_key=record.thumbnail_key, thumbnail_sha=record.thumbnail_sha, format=fmt,
                               image_id=record.id)
        result = await _cached_or_enqueued(services, upscale_job(params, model_id=record.model_id,
                                                                 priority=priority), wait)
    if isinstance(result, bytes) and width is not None:
        return await width_variant(services, record.model_id, record.thumbnail_sha, fmt, width, result)
    return result


async def reconstruct_thumbnail(services: Services, data: bytes, given: GivenMetadata, *, fmt: str, priority: str,
                                wait: float) -> bytes | Job:
    """The reconstruction of a thumbnail the client stored itself (PNG, lossless WebP, or a JPEG XL as this
    service wrote it), made by one of the served models (checked by
    :func:`~service.api.thumbnails.accept_thumbnail` before anything is stored or queued). It is stored as an
    image's thumbnail would be, so its hash, and the cached reconstruction, are the same whatever format the
    client posted it in."""
    if not data:
        raise InvalidRequest("the request has no body: send the thumbnail as multipart field `file` or raw")
    accepted = await accept_thumbnail(services, data, given)
    sha = sha256_hex(accepted.data)
    key = uploaded_thumbnail_key(sha, accepted.format)
    await services.posted.store(key, accepted.data)  # kept for TADM_POSTED_THUMBNAIL_RETENTION_SECONDS after this
    params = UpscaleParams(thumbnail_key=key, thumbnail_sha=sha, format=fmt)
    return await _cached_or_enqueued(services, upscale_job(params, model_id=accepted.model.model_id,
                                                           priority=priority), wait)


async def _cached_or_enqueued(services: Services, job: Job, wait: float) -> bytes | Job:
    """The cached reconstruction the upscale ``job`` would make, else the job, enqueued and waited for."""
    params = job.params
    assert isinstance(params, UpscaleParams)
    key = reconstruction_key(job.model_id, params.thumbnail_sha, params.format)
    data = await services.cache.get(key)
    if data is not None:
        return data
    # rerun_succeeded: the result is not in the cache (evicted), so a succeeded job must run again
    job, _ = await services.queue.enqueue(job, rerun_succeeded=True,
                                          retry_after=services.settings.retry_after_seconds)
    job = await services.queue.wait(job.id, wait) or job
    if job.status != "succeeded":
        return job
    data = await services.cache.get(key)
    return job if data is None else data  # evicted between the job's end and this read: the client polls again


async def cached_reconstruction(services: Services, model_id: str, thumbnail_sha: str, fmt: str,
                                width: int | None = None) -> bytes:
    """A finished reconstruction (its ``width`` variant when given), while the cache holds it."""
    data = await services.cache.get(reconstruction_key(model_id, thumbnail_sha, fmt))
    if data is None:
        raise NotFound(f"reconstruction {model_id}/{thumbnail_sha}.{fmt} is not cached (evicted or never made)")
    if width is not None:
        return await width_variant(services, model_id, thumbnail_sha, fmt, width, data)
    return data


# -- jobs -----------------------------------------------------------------------------------------------------
async def find_job(services: Services, job_id: str) -> Job:
    job = await services.queue.get(job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        raise NotFound(f"no job with id {job_id!r} (unknown, or expired)")
    return job


async def cancel_job(services: Services, job_id: str) -> Job:
    """Cancel a queued or running job (a finished job is returned unchanged)."""
    await find_job(services, job_id)
    job = await services.queue.cancel(job_id)
    if job is None:
        raise NotFound(f"job {job_id} expired")
    return job
