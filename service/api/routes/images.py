"""``/v1/images``: upload an HR image, read its record and thumbnail, fetch its reconstruction, delete it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ...errors import InvalidRequest
from ...media import MEDIA_TYPES
from ...storage.records import ImageRecord
from .. import schemas, usecases
from ..deps import ReadAccess, ServicesDep, WriteAccess
from ..responses import PROBLEMS, Priority, ResultFormat, content_response, job_response, result_response
from ..uploads import OPENAPI_UPLOAD_BODY, read_upload, requested_wait
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
        return JSONResponse(image_view(result, settings).model_dump(mode="json"), status_code=201)
    return job_response(result, request, settings)


@router.get("", response_model=schemas.ImageList, dependencies=[ReadAccess])
async def list_images(services: ServicesDep, limit: int = Query(20, ge=1, le=1000)) -> schemas.ImageList:
    """The newest images first."""
    records = await usecases.newest_images(services, limit)
    return schemas.ImageList(items=[image_view(r, services.settings) for r in records])


@router.get("/{image_id}", response_model=schemas.Image, dependencies=[ReadAccess], responses=PROBLEMS)
async def get_image(image_id: str, services: ServicesDep) -> schemas.Image:
    return image_view(await usecases.find_image(services, image_id), services.settings)


@router.delete("/{image_id}", status_code=204, dependencies=[WriteAccess], responses=PROBLEMS)
async def delete_image(image_id: str, services: ServicesDep) -> Response:
    """Delete the image's record, its thumbnail (unless another image shares it) and its reconstructions."""
    await usecases.delete_image(services, image_id)
    return Response(status_code=204)


@router.get("/{image_id}/thumbnail", dependencies=[ReadAccess],
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}, **PROBLEMS})
async def get_thumbnail(image_id: str, request: Request, services: ServicesDep) -> Response:
    """The thumbnail PNG: immutable, strong ETag."""
    record = await usecases.find_image(services, image_id)
    if request.headers.get("if-none-match"):  # answer 304 without reading the bytes
        probe = content_response(request, b"", "image/png", digest=record.thumbnail_sha)
        if probe.status_code == 304:
            return probe
    data = await usecases.read_thumbnail(services, record)
    return content_response(request, data, "image/png", digest=record.thumbnail_sha)


@router.get("/{image_id}/full", dependencies=[ReadAccess],
            responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, 202: {"model": schemas.Job},
                       **PROBLEMS})
async def get_full(image_id: str, request: Request, services: ServicesDep, format: ResultFormat = "png",
                   priority: Priority = "interactive") -> Response:
    """The reconstruction: 200 from the cache, else 202 + job (or wait with ``Prefer: wait=N``)."""
    wait = requested_wait(request, 0.0, services.settings.max_wait_seconds)
    result = await usecases.reconstruct_image(services, image_id, fmt=format, priority=priority, wait=wait)
    return result_response(result, format, request, services.settings)
