"""``/v1/reconstructions``: reconstruct a thumbnail the client stored itself, and serve finished results."""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, Request, Response

from model.thumbnail import SUPPORTED_SCALES

from ...errors import NotFound
from ...media import FORMATS, MEDIA_TYPES, ResultFormat
from ...redis_keys import Priority
from .. import schemas, usecases
from ..deps import WriteServices, readable
from ..responses import PROBLEMS, chosen_format, content_response, result_response
from ..thumbnails import GivenMetadata
from ..uploads import OPENAPI_UPLOAD_BODY, check_scale, read_upload, requested_wait
from ..variants import check_width

router = APIRouter(prefix="/v1/reconstructions", tags=["reconstructions"])
_RESULT = re.compile(rf"^([0-9a-f]{{64}})\.({'|'.join(FORMATS)})$")
_MODEL = re.compile(r"^[0-9a-f]{8,64}$")


@router.post("", openapi_extra=OPENAPI_UPLOAD_BODY,
             responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}, 202: {"model": schemas.Job},
                        **PROBLEMS})
async def reconstruct(request: Request, services: WriteServices, format: ResultFormat | None = None,
                      priority: Priority = "interactive",
                      scale: int | None = Query(None, description="the thumbnail's scale, where its file has no "
                                                "`tadm` metadata (a tool stripped it)", json_schema_extra={"enum": list(SUPPORTED_SCALES)}),
                      width: int | None = Query(None, ge=1, description="the original's width, without metadata"),
                      height: int | None = Query(None, ge=1, description="the original's height, without metadata"),
                      model: str | None = Query(None, pattern=_MODEL.pattern,
                                                description="the id of the model that made the thumbnail, without "
                                                "metadata (default: the one known model of that scale)")) -> Response:
    """Reconstruct the HR image from a thumbnail (PNG, lossless WebP, or a JPEG XL as this service served it)
    made by one of the served models. Without ``format``, the format ``Accept`` prefers (``Vary: Accept``)."""
    fmt, vary = chosen_format(request, format)
    check_scale(scale)
    data = await read_upload(request, services.settings.max_upload_bytes)
    wait = requested_wait(request, 0.0, services.settings.max_wait_seconds)
    given = GivenMetadata(scale=scale, width=width, height=height, model_id=model)
    result = await usecases.reconstruct_thumbnail(services, data, given, fmt=fmt, priority=priority, wait=wait)
    return result_response(result, fmt, request, services.settings, vary)


@router.get("/{model_id}/{filename}",
            responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}},
                       206: {"description": "Partial content (Range)"}, **PROBLEMS})
async def get_result(model_id: str, filename: str, request: Request,
                     w: int | None = Query(None, description="at most this many pixels wide (one of "
                                           "TADM_VARIANT_WIDTHS)")) -> Response:
    """A finished reconstruction (a job's ``result_url``); 404 once evicted from the cache."""
    services = readable(request)  # not a dependency: see service.api.deps.readable
    match = _RESULT.match(filename)
    if not match or not _MODEL.match(model_id):
        raise NotFound(f"no reconstruction {model_id}/{filename}")
    check_width(services, w)
    sha, fmt = match.groups()
    data = await usecases.cached_reconstruction(services, model_id, sha, fmt, width=w)
    return content_response(request, data, MEDIA_TYPES[fmt])
