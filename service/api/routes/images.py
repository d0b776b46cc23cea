"""``/v1/images``: upload an HR image, read its record and thumbnail, fetch its reconstruction, delete it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ...errors import InvalidRequest
from ...media import MEDIA_TYPES
from ...storage.records import ImageRecord
from .. import deletion, schemas, usecases
from ..deps import ReadAccess, ServicesDep, WriteAccess
from ..head import get_route
from ..responses import (
    PROBLEMS,
    Priority,
    ResultFormat,
    chosen_format,
    content_response,
    etag_for,
    job_response,
    not_modified,
    result_response,
)
from ..uploads import OPENAPI_UPLOAD_BODY, read_upload, requested_wait
from ..variants import check_width
from ..views import image_view

router = APIRouter(prefix="/v1/images", tags=["images"])


@router.post("", status_code=201, response_model=schemas.Image, dependencies=[WriteAccess],
             responses={202: {"model": schemas.Job}, **PROBLEMS}, openapi_extra=OPENAPI_UPLOAD_BODY)
async def upload_image(request: Request, services: ServicesDep,
                       scale: int = Query(16, description="16 or 32", json_schema_extra={"enum": [16, 32]}),
                       priority: Priority = "interactive") -> Response:
    """Upload an HR image (JPEG, PNG, WebP); 201 with the image once its thumbnail is stored, else 202 + job."""
    settings = services.settings
    if scale not in (16, 32):
        raise InvalidRequest(f"`scale` must be 16 or 32 but is {scale}")
    data = await read_upload(request, settings.max_upload_bytes)
    wait = requested_wait(request, settings.upload_wait_seconds, settings.max_wait_seconds)
    result = await usecases.upload_image(services, data, scale=scale, priority=priority, wait=wait)
    if isinstance(result, ImageRecord):
        return JSONResponse(image_view(result, settings).model_dump(mode="json"), status_code=201,
                            headers={"Location": f"/v1/images/{result.id}"})
    return job_response(result, request, settings)


@get_route(router, "", response_model=schemas.ImageList, dependencies=[ReadAccess])
async def list_images(services: ServicesDep, limit: int = Query(20, ge=1, le=1000)) -> schemas.ImageList:
    """The newest images first."""
    records = await usecases.newest_images(services, limit)
    return schemas.ImageList(items=[image_view(r, services.settings) for r in records])


@get_route(router, "/{image_id}", response_model=schemas.Image, dependencies=[ReadAccess], responses=PROBLEMS)
async def get_image(image_id: str, services: ServicesDep) -> schemas.Image:
    return image_view(await usecases.find_image(services, image_id), services.settings)


@router.delete("/{image_id}", status_code=204, dependencies=[WriteAccess], responses=PROBLEMS)
async def delete_image(image_id: str, services: ServicesDep) -> Response:
    """Delete the image: cancel its queued and running jobs, remove its record, its thumbnail and reconstructions
    (unless another image shares that thumbnail) and anything those jobs still store."""
    await deletion.delete_image(services, image_id)
    return Response(status_code=204)


@get_route(router, "/{image_id}/thumbnail", dependencies=[ReadAccess],
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}, **PROBLEMS})
async def get_thumbnail(image_id: str, request: Request, services: ServicesDep) -> Response:
    """The thumbnail PNG: immutable, strong ETag."""
    record = await usecases.find_image(services, image_id)
    unchanged = not_modified(request, etag_for(b"", record.thumbnail_sha))  # 304 without reading the bytes
    if unchanged is not None:
        return unchanged
    data = await usecases.read_thumbnail(services, record)
    return content_response(request, data, "image/png", digest=record.thumbnail_sha)


@get_route(router, "/{image_id}/full", dependencies=[ReadAccess],
           responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, 202: {"model": schemas.Job},
                      206: {"description": "Partial content (Range)"}, **PROBLEMS})
async def get_full(image_id: str, request: Request, services: ServicesDep, format: ResultFormat | None = None,
                   w: int | None = Query(None, description="at most this many pixels wide (one of "
                                         "TADM_VARIANT_WIDTHS), derived from the cached reconstruction"),
                   priority: Priority = "interactive") -> Response:
    """The reconstruction: 200 from the cache, else 202 + job (or wait with ``Prefer: wait=N``). Without
    ``format``, the format ``Accept`` prefers (``Vary: Accept``)."""
    fmt, vary = chosen_format(request, format)
    check_width(services, w)
    wait = requested_wait(request, 0.0, services.settings.max_wait_seconds)
    result = await usecases.reconstruct_image(services, image_id, fmt=fmt, priority=priority, wait=wait, width=w)
    return result_response(result, fmt, request, services.settings, vary)
