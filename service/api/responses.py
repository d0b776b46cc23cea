"""Shared response helpers: content-addressed bytes with strong ETags, revalidation and byte ranges, pending
jobs, failed jobs."""

from __future__ import annotations

import hashlib

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from model.thumbnail_formats import jxl_available

from ..config import Settings
from ..errors import InvalidRequest, RangeNotSatisfiable
from ..media import MEDIA_TYPES
from ..queue.jobs import Job
from ..storage.memory import Blob
from . import schemas
from .http_caching import (
    Unsatisfiable,
    negotiated_format,
    negotiated_thumbnail_format,
    none_match,
    requested_range,
)
from .problems import PROBLEM_MEDIA_TYPE
from .views import job_view

IMMUTABLE = "public, max-age=31536000, immutable"
# Problem responses documented in the OpenAPI document of the routes that can produce them.
PROBLEMS: dict = {s: {"model": schemas.Problem} for s in (401, 403, 404, 409, 413, 415, 416, 422, 503)}


def etag_for(data: bytes, digest: str | None = None) -> str:
    """The strong ETag: the content's SHA-256 (``digest`` when the caller knows it; computed once per copy kept
    in memory)."""
    if digest is None:
        digest = data.sha256 if isinstance(data, Blob) else hashlib.sha256(data).hexdigest()
    return '"' + digest[:32] + '"'


def not_modified(request: Request, etag: str, vary: str | None = None) -> Response | None:
    """304 when ``If-None-Match`` names ``etag`` (weak comparison), else None."""
    if not none_match(request.headers.get("if-none-match"), etag):
        return None
    return Response(status_code=304, headers=_content_headers(etag, vary))


def _content_headers(etag: str, vary: str | None) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    if vary:
        headers["Vary"] = vary
    return headers


def content_response(request: Request, data: bytes, media_type: str, digest: str | None = None,
                     vary: str | None = None) -> Response:
    """200 with the bytes, a strong ETag and an immutable cache lifetime; 304 on a matching If-None-Match; 206
    with one byte range (``Range``, honoured while ``If-Range`` names this ETag), 416 for one past the end."""
    etag = etag_for(data, digest)
    if "if-none-match" in request.headers:
        unchanged = not_modified(request, etag, vary)
        if unchanged is not None:
            return unchanged
    headers = _content_headers(etag, vary)
    try:
        part = requested_range(request.headers.get("range"), request.headers.get("if-range"), etag, len(data))
    except Unsatisfiable:
        problem = RangeNotSatisfiable(f"the range {request.headers.get('range')!r} starts past the end of the "
                                      f"{len(data)} bytes", size=len(data))
        return JSONResponse(problem.to_problem(instance=request.url.path), status_code=416,
                            headers={"Content-Range": f"bytes */{len(data)}"}, media_type=PROBLEM_MEDIA_TYPE)
    if part is None:
        return Response(data, media_type=media_type, headers=headers)
    headers["Content-Range"] = part.content_range(len(data))
    return Response(data[part.start:part.end + 1], status_code=206, media_type=media_type, headers=headers)


def pending_response(job: Job, settings: Settings, vary: str | None = None) -> JSONResponse:
    """202 + Job, ``Location`` to poll and ``Retry-After``."""
    headers = {"Location": f"/v1/jobs/{job.id}", "Retry-After": str(settings.retry_after_seconds)}
    if vary:
        headers["Vary"] = vary
    return JSONResponse(job_view(job, settings).model_dump(mode="json"), status_code=202, headers=headers)


def failed_response(job: Job, request: Request) -> JSONResponse:
    """The failed job's own problem (its status, its type), pointing at the job."""
    problem = dict(job.error or {"type": "urn:tadm:problem:job-failed", "title": "Job failed", "status": 500,
                                 "detail": f"job {job.id} ended {job.status}"})
    problem.setdefault("instance", None)
    problem["instance"] = request.url.path
    problem["job_id"] = job.id
    return JSONResponse(problem, status_code=int(problem.get("status") or 500), media_type=PROBLEM_MEDIA_TYPE)


def job_response(job: Job, request: Request, settings: Settings, vary: str | None = None) -> JSONResponse:
    """A job a use case returned instead of its result: its problem if it ended without one, else 202."""
    if job.status in ("failed", "cancelled"):
        return failed_response(job, request)
    return pending_response(job, settings, vary)


def result_response(result: bytes | Job, fmt: str, request: Request, settings: Settings,
                    vary: str | None = None) -> Response:
    """A reconstruction (200, immutable) or the job still making it; ``vary`` names the request headers that
    chose it (``Accept`` when the format was negotiated)."""
    if isinstance(result, bytes):
        return content_response(request, result, MEDIA_TYPES[fmt], vary=vary)
    return job_response(result, request, settings, vary)


def chosen_format(request: Request, fmt: str | None) -> tuple[str, str | None]:
    """The reconstruction format: ``format`` when given, else the one ``Accept`` prefers; and the ``Vary`` value
    its responses need (a cache must key them by Accept when Accept chose)."""
    if fmt is not None:
        return fmt, None
    return negotiated_format(request.headers.get("accept")), "Accept"


def chosen_thumbnail_format(request: Request, fmt: str | None) -> tuple[str, str | None]:
    """The thumbnail format: ``format`` when given, else the one ``Accept`` names (PNG by default), and the
    ``Vary`` value its responses need."""
    if fmt == "jxl" and not jxl_available():
        raise InvalidRequest("this deployment cannot write JPEG XL (the pillow-jxl-plugin package is missing)")
    if fmt is not None:
        return fmt, None
    return negotiated_thumbnail_format(request.headers.get("accept"), jxl=jxl_available()), "Accept"
