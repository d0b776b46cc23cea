"""``/v1/reconstructions``: reconstruct a thumbnail the client stored itself, and serve finished results."""

from __future__ import annotations

import asyncio
import re
from typing import Literal

from fastapi import APIRouter, Request, Response

from model.thumbnail import Thumbnail, ThumbnailError

from ...errors import CorruptImage, InvalidRequest, NotFound, ThumbnailMismatch, UnsupportedMediaType
from ...images import sniff_format
from ...jobs import Job, job_id_for
from ...storage import reconstruction_key, sha256_hex, uploaded_thumbnail_key
from .. import schemas
from ..deps import ReadAccess, Services, ServicesDep, WriteAccess
from ..responses import MEDIA_TYPES, PROBLEMS, content_response, failed_response, pending_response
from ..uploads import OPENAPI_UPLOAD_BODY, read_upload, requested_wait

router = APIRouter(prefix="/v1/reconstructions", tags=["reconstructions"])
_RESULT = re.compile(r"^([0-9a-f]{64})\.(png|webp|jpeg)$")
_MODEL = re.compile(r"^[0-9a-f]{8,64}$")


async def serve_or_enqueue(request: Request, services: Services, job: Job) -> Response:
    """200 with the cached reconstruction, else enqueue ``job`` (shared with ``GET /v1/images/{id}/full``) and wait as the client prefers (202 after)."""
    s = services.settings
    fmt = job.params["format"]
    key = reconstruction_key(job.model_id, job.params["thumbnail_sha"], fmt)
    data = await services.cache.get(key)
    if data is None:
        # rerun_succeeded: the result is not in the cache (evicted), so a succeeded job must run again
        job, _ = await services.queue.enqueue(job, rerun_succeeded=True, retry_after=s.retry_after_seconds)
        job = await services.queue.wait(job.id, requested_wait(request, 0.0, s.max_wait_seconds)) or job
        if job.status in ("failed", "cancelled"):
            return failed_response(job, request)
        if job.status != "succeeded":
            return pending_response(job, s)
        data = await services.cache.get(key)
        if data is None:  # evicted between the job's end and this read: the client polls again
            return pending_response(job, s)
    return content_response(request, data, MEDIA_TYPES[fmt])


@router.post("", dependencies=[WriteAccess], openapi_extra=OPENAPI_UPLOAD_BODY,
             responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, 202: {"model": schemas.Job},
                        **PROBLEMS})
async def reconstruct(request: Request, services: ServicesDep, format: Literal["png", "webp", "jpeg"] = "png",
                      priority: Literal["interactive", "background"] = "interactive") -> Response:
    """Reconstruct the HR image from a thumbnail PNG made by one of the served models."""
    data = await read_upload(request, services.settings.max_upload_bytes)
    if not data:
        raise InvalidRequest("the request has no body: send the thumbnail PNG as multipart field `file` or raw")
    if sniff_format(data) != "png":
        raise UnsupportedMediaType("a thumbnail must be a PNG (lossy formats destroy what the rescaler hid in it)")
    try:
        thumb = await asyncio.to_thread(Thumbnail.from_png, data)
    except ThumbnailError as exc:
        raise CorruptImage(f"not a usable thumbnail: {exc}") from exc
    known = await services.registry.known_models()
    model = known.get(thumb.model_id or "")
    if model is None or model.scale != thumb.scale:
        served = ", ".join(f"{m.model_id} ({m.scale}x)" for m in known.values()) or "none yet"
        raise ThumbnailMismatch(f"the thumbnail was made at {thumb.scale}x by model {thumb.model_id}, which no "
                                f"worker serves; served models: {served}", model_id=thumb.model_id,
                                scale=thumb.scale)
    sha = sha256_hex(data)
    key = uploaded_thumbnail_key(sha)
    if not await asyncio.to_thread(services.storage.exists, key):
        await asyncio.to_thread(services.storage.put, key, data)
    job = Job(id=job_id_for("upscale", sha, model.model_id, {"format": format}), kind="upscale",
              model_id=model.model_id, priority=priority,
              params={"thumbnail_key": key, "thumbnail_sha": sha, "format": format})
    return await serve_or_enqueue(request, services, job)


@router.get("/{model_id}/{filename}", dependencies=[ReadAccess],
            responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, **PROBLEMS})
async def get_result(model_id: str, filename: str, request: Request, services: ServicesDep) -> Response:
    """A finished reconstruction (a job's ``result_url``); 404 once evicted from the cache."""
    match = _RESULT.match(filename)
    if not match or not _MODEL.match(model_id):
        raise NotFound(f"no reconstruction {model_id}/{filename}")
    sha, fmt = match.groups()
    data = await services.cache.get(reconstruction_key(model_id, sha, fmt))
    if data is None:
        raise NotFound(f"reconstruction {model_id}/{filename} is not cached (evicted or never made)")
    return content_response(request, data, MEDIA_TYPES[fmt])
