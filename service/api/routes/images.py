"""``/v1/images``: upload an HR image, read its record and thumbnail, fetch its reconstruction, delete it."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ...errors import InvalidRequest, NotFound, NotReady, QueueFull
from ...images import decode_image, inspect_image
from ...jobs import Job, job_id_for
from ...records import ImageRecord
from ...storage import original_key, reconstruction_key, sha256_hex
from .. import schemas
from ..deps import ReadAccess, ServicesDep, WriteAccess
from ..responses import MEDIA_TYPES, PROBLEMS, content_response, failed_response, pending_response
from ..uploads import OPENAPI_UPLOAD_BODY, read_upload, requested_wait
from ..views import image_view
from .reconstructions import serve_or_enqueue

router = APIRouter(prefix="/v1/images", tags=["images"])
_IMAGE_ID = re.compile(r"^[0-9a-f]{20}$")
Priority = Literal["interactive", "background"]


async def _record(services, image_id: str) -> ImageRecord:
    record = await services.records.get(image_id) if _IMAGE_ID.match(image_id) else None
    if record is None:
        raise NotFound(f"no image with id {image_id!r}")
    return record


@router.post("", status_code=201, response_model=schemas.Image, dependencies=[WriteAccess],
             responses={202: {"model": schemas.Job}, **PROBLEMS}, openapi_extra=OPENAPI_UPLOAD_BODY)
async def upload_image(request: Request, services: ServicesDep,
                       scale: int = Query(16, description="16 or 32", json_schema_extra={"enum": [16, 32]}),
                       priority: Priority = "interactive") -> Response:
    """Upload an HR image (JPEG, PNG, WebP); 201 with the image once its thumbnail is stored, else 202 + job."""
    s = services.settings
    if scale not in (16, 32):
        raise InvalidRequest(f"`scale` must be 16 or 32 but is {scale}")
    data = await read_upload(request, s.max_upload_bytes)
    inspect_image(data, max_pixels=s.max_image_pixels, min_side=scale)  # header only: 413/415/422 first
    await asyncio.to_thread(decode_image, data)  # a truncated or corrupt file is refused now, not in a job
    model = await services.registry.model_for_scale(scale)
    if model is None:
        live = await services.registry.live_workers()
        if not live:
            raise NotReady("no live worker: the image cannot be downscaled now", retry_after=s.retry_after_seconds)
        served = sorted({w.model.scale for w in live})
        raise InvalidRequest(f"no live worker serves scale {scale}; served scales: {served}")
    sha = sha256_hex(data)
    image_id = hashlib.sha256(f"{sha}:{model.model_id}:{scale}".encode()).hexdigest()[:20]
    record = await services.records.get(image_id)
    if record is not None:  # a duplicate upload: the same image, no second job
        return JSONResponse(image_view(record, s).model_dump(mode="json"), status_code=201)
    key = original_key(image_id)
    await asyncio.to_thread(services.storage.put, key, data)
    job = Job(id=job_id_for("downscale", sha, model.model_id, {"scale": scale}), kind="downscale",
              model_id=model.model_id, priority=priority,
              params={"image_id": image_id, "input_key": key, "scale": scale, "original_bytes": len(data)})
    try:
        # rerun_succeeded: the record is missing, so a succeeded job of a since-deleted image must run again
        job, _ = await services.queue.enqueue(job, rerun_succeeded=True, retry_after=s.retry_after_seconds)
    except QueueFull:
        if await services.queue.get(job.id) is None:
            await asyncio.to_thread(services.storage.delete, key)
        raise
    wait = requested_wait(request, s.upload_wait_seconds, s.max_wait_seconds)
    job = await services.queue.wait(job.id, wait) or job  # (None only if the job expired meanwhile)
    if job.status == "succeeded":
        return JSONResponse(image_view(await _record(services, image_id), s).model_dump(mode="json"),
                            status_code=201)
    if job.status in ("failed", "cancelled"):
        return failed_response(job, request)
    return pending_response(job, s)


@router.get("", response_model=schemas.ImageList, dependencies=[ReadAccess])
async def list_images(services: ServicesDep, limit: int = Query(20, ge=1, le=1000)) -> schemas.ImageList:
    """The newest images first."""
    records = await services.records.newest(min(limit, services.settings.list_limit_max))
    return schemas.ImageList(items=[image_view(r, services.settings) for r in records])


@router.get("/{image_id}", response_model=schemas.Image, dependencies=[ReadAccess], responses=PROBLEMS)
async def get_image(image_id: str, services: ServicesDep) -> schemas.Image:
    return image_view(await _record(services, image_id), services.settings)


@router.delete("/{image_id}", status_code=204, dependencies=[WriteAccess], responses=PROBLEMS)
async def delete_image(image_id: str, services: ServicesDep) -> Response:
    """Delete the image's record, its thumbnail (unless another image shares it) and its reconstructions."""
    record = await _record(services, image_id)
    remaining = await services.records.delete(record)
    if remaining == 0:
        await asyncio.to_thread(services.storage.delete, record.thumbnail_key)
    for fmt in MEDIA_TYPES:
        await services.cache.remove(reconstruction_key(record.model_id, record.thumbnail_sha, fmt))
    await asyncio.to_thread(services.storage.delete, original_key(record.id))
    return Response(status_code=204)


@router.get("/{image_id}/thumbnail", dependencies=[ReadAccess],
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}, **PROBLEMS})
async def get_thumbnail(image_id: str, request: Request, services: ServicesDep) -> Response:
    """The thumbnail PNG: immutable, strong ETag."""
    record = await _record(services, image_id)
    if request.headers.get("if-none-match"):  # answer 304 without reading the bytes
        probe = content_response(request, b"", "image/png", digest=record.thumbnail_sha)
        if probe.status_code == 304:
            return probe
    data = await asyncio.to_thread(services.storage.get, record.thumbnail_key)
    if data is None:
        raise NotFound(f"the thumbnail of image {image_id} is missing from storage")
    return content_response(request, data, "image/png", digest=record.thumbnail_sha)


@router.get("/{image_id}/full", dependencies=[ReadAccess],
            responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, 202: {"model": schemas.Job},
                       **PROBLEMS})
async def get_full(image_id: str, request: Request, services: ServicesDep,
                   format: Literal["png", "webp", "jpeg"] = "png", priority: Priority = "interactive") -> Response:
    """The reconstruction: 200 from the cache, else 202 + job (or wait with ``Prefer: wait=N``)."""
    record = await _record(services, image_id)
    job = Job(id=job_id_for("upscale", record.thumbnail_sha, record.model_id, {"format": format}),
              kind="upscale", model_id=record.model_id, priority=priority,
              params={"thumbnail_key": record.thumbnail_key, "thumbnail_sha": record.thumbnail_sha,
                      "format": format, "image_id": record.id})
    return await serve_or_enqueue(request, services, job)
