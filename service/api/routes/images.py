"""``/v1/images``: upload an HR image, read its record and thumbnail, fetch its reconstruction, delete it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from model.thumbnail_formats import MEDIA_TYPES as THUMBNAIL_MEDIA_TYPES

from ...errors import InvalidRequest
from ...media import MEDIA_TYPES
from ...redis_keys import Priority
from ...storage import thumbnail_key_format
from ...storage.records import ImageRecord
from .. import deletion, hot_query, schemas, usecases
from ..deps import ReadServices, WriteServices, readable
from ..responses import (
    PROBLEMS,
    chosen_format,
    chosen_thumbnail_format,
    content_response,
    etag_for,
    job_response,
    not_modified,
    result_response,
)
from ..uploads import OPENAPI_UPLOAD_BODY, parse_scale, read_upload, requested_wait
from ..variants import check_width
from ..views import image_view

router = APIRouter(prefix="/v1/images", tags=["images"])


# The CDN's hot reads first: routes are matched in order on every request.
@router.get("/{image_id}/thumbnail",
            responses={200: {"content": {m: {} for m in THUMBNAIL_MEDIA_TYPES.values()}},
                       304: {"description": "Not modified"}, **PROBLEMS},
            openapi_extra={"parameters": hot_query.THUMBNAIL_PARAMETERS})
async def get_thumbnail(image_id: str, request: Request) -> Response:
    """The thumbnail, lossless: PNG, or WebP or JPEG XL where ``Accept`` names them (``Vary: Accept``) or
    ``format`` asks; immutable, with a strong ETag per format."""
    services = readable(request)  # not a dependency: see service.api.deps.readable
    fmt, vary = chosen_thumbnail_format(
        request, hot_query.choice(request.query_params, "format", hot_query.THUMBNAIL_FORMATS))
    record = await usecases.find_image(services, image_id)
    as_stored = fmt == thumbnail_key_format(record.thumbnail_key)
    if as_stored and "if-none-match" in request.headers:  # 304 without reading the bytes
        unchanged = not_modified(request, etag_for(b"", record.thumbnail_sha), vary)
        if unchanged is not None:
            return unchanged
    data = await usecases.read_thumbnail(services, record, fmt)
    # A converted format's ETag is its own bytes' hash: the stored thumbnail's would name other bytes.
    return content_response(request, data, THUMBNAIL_MEDIA_TYPES[fmt],
                            digest=record.thumbnail_sha if as_stored else None, vary=vary)


@router.get("/{image_id}/full",
            responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, 202: {"model": schemas.Job},
                       206: {"description": "Partial content (Range)"}, **PROBLEMS},
            openapi_extra={"parameters": hot_query.FULL_PARAMETERS})
async def get_full(image_id: str, request: Request) -> Response:
    """The reconstruction: 200 from the cache, else 202 + job (or wait with ``Prefer: wait=N``). Without
    ``format``, the format ``Accept`` prefers (``Vary: Accept``)."""
    services = readable(request)  # not a dependency: see service.api.deps.readable
    query = request.query_params  # parsed by hand: see service.api.hot_query
    fmt, vary = chosen_format(request, hot_query.choice(query, "format", hot_query.FORMATS))
    w = hot_query.positive_int(query, "w")
    priority = hot_query.choice(query, "priority", hot_query.PRIORITIES) or "interactive"
    check_width(services, w)
    wait = requested_wait(request, 0.0, services.settings.max_wait_seconds)
    result = await usecases.reconstruct_image(services, image_id, fmt=fmt, priority=priority, wait=wait, width=w)
    return result_response(result, fmt, request, services.settings, vary)


@router.post("", status_code=201, response_model=schemas.Image,
             responses={202: {"model": schemas.Job}, **PROBLEMS}, openapi_extra=OPENAPI_UPLOAD_BODY)
async def upload_image(request: Request, services: WriteServices,
                       scale: str = Query("16", description="16, 32, or auto: the most compact thumbnail whose "
                                          "verified reconstruction meets min_psnr_y / min_ssimulacra2",
                                          json_schema_extra={"enum": ["16", "32", "auto"]}),
                       min_psnr_y: float | None = Query(None, ge=0, le=100, description="scale=auto: the PSNR-Y "
                                                        "(dB) to reach (default TADM_AUTO_MIN_PSNR_Y)"),
                       min_ssimulacra2: float | None = Query(None, ge=-200, le=100, description="scale=auto: the "
                                                             "SSIMULACRA2 score to reach (default "
                                                             "TADM_AUTO_MIN_SSIMULACRA2)"),
                       priority: Priority = "interactive") -> Response:
    """Upload an HR image (JPEG, PNG, WebP); 201 with the image once its thumbnail is stored and verified, else
    202 + job."""
    settings = services.settings
    chosen = parse_scale(scale)
    target = None
    if chosen is None:
        target = usecases.QualityTarget(
            min_psnr_y if min_psnr_y is not None else settings.auto_min_psnr_y,
            min_ssimulacra2 if min_ssimulacra2 is not None else settings.auto_min_ssimulacra2)
    elif min_psnr_y is not None or min_ssimulacra2 is not None:
        raise InvalidRequest("`min_psnr_y` and `min_ssimulacra2` go with `scale=auto` only")
    data = await read_upload(request, settings.max_upload_bytes)
    wait = requested_wait(request, settings.upload_wait_seconds, settings.max_wait_seconds)
    result = await usecases.upload_image(services, data, scale=chosen, priority=priority, wait=wait, target=target)
    if isinstance(result, ImageRecord):
        return JSONResponse(image_view(result, settings).model_dump(mode="json"), status_code=201,
                            headers={"Location": f"/v1/images/{result.id}"})
    return job_response(result, request, settings)


@router.get("", response_model=schemas.ImageList)
async def list_images(services: ReadServices, limit: int = Query(20, ge=1, le=1000),
                      sha256: str | None = Query(None, pattern="^[0-9a-f]{64}$",
                                                 description="only the images made from an upload with this "
                                                 "SHA-256 (lower-case hex): whether a file is stored already")
                      ) -> schemas.ImageList:
    """The newest images first."""
    if sha256 is not None:
        records = (await services.records.with_original(sha256))[:limit]
    else:
        records = await usecases.newest_images(services, limit)
    return schemas.ImageList(items=[image_view(r, services.settings) for r in records])


@router.get("/{image_id}", response_model=schemas.Image, responses=PROBLEMS)
async def get_image(image_id: str, services: ReadServices) -> schemas.Image:
    return image_view(await usecases.find_image(services, image_id), services.settings)


@router.delete("/{image_id}", status_code=204, responses=PROBLEMS)
async def delete_image(image_id: str, services: WriteServices) -> Response:
    """Delete the image: cancel its queued and running jobs, remove its record, its thumbnail and reconstructions
    (unless another image shares that thumbnail) and anything those jobs still store."""
    await deletion.delete_image(services, image_id)
    return Response(status_code=204)
