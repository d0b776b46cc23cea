"""Shared response helpers: content-addressed bytes with strong ETags, pending jobs, failed jobs; and the query
parameter types the routes share."""

from __future__ import annotations

import hashlib
from typing import Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from ..config import Settings
from ..media import MEDIA_TYPES
from ..queue.jobs import Job
from . import schemas
from .problems import PROBLEM_MEDIA_TYPE
from .views import job_view

Priority = Literal["interactive", "background"]
ResultFormat = Literal["png", "webp", "jpeg"]  # the keys of MEDIA_TYPES
IMMUTABLE = "public, max-age=31536000, immutable"
# Problem responses documented in the OpenAPI document of the routes that can produce them.
PROBLEMS: dict = {s: {"model": schemas.Problem} for s in (401, 403, 404, 409, 413, 415, 422, 503)}


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or etag in [t.strip() for t in header.split(",")]


def content_response(request: Request, data: bytes, media_type: str, digest: str | None = None) -> Response:
    """200 with the bytes, a strong ETag and an immutable cache lifetime; 304 on a matching If-None-Match."""
    etag = '"' + (digest or hashlib.sha256(data).hexdigest())[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def pending_response(job: Job, settings: Settings) -> JSONResponse:
    """202 + Job, ``Location`` to poll and ``Retry-After``."""
    return JSONResponse(job_view(job, settings).model_dump(mode="json"), status_code=202,
                        headers={"Location": f"/v1/jobs/{job.id}", "Retry-After": str(settings.retry_after_seconds)})


def failed_response(job: Job, request: Request) -> JSONResponse:
    """The failed job's own problem (its status, its type), pointing at the job."""
    problem = dict(job.error or {"type": "urn:tadm:problem:job-failed", "title": "Job failed", "status": 500,
                                 "detail": f"job {job.id} ended {job.status}"})
    problem.setdefault("instance", None)
    problem["instance"] = request.url.path
    problem["job_id"] = job.id
    return JSONResponse(problem, status_code=int(problem.get("status") or 500), media_type=PROBLEM_MEDIA_TYPE)


def job_response(job: Job, request: Request, settings: Settings) -> JSONResponse:
    """A job a use case returned instead of its result: its problem if it ended without one, else 202."""
    if job.status in ("failed", "cancelled"):
        return failed_response(job, request)
    return pending_response(job, settings)


def result_response(result: bytes | Job, fmt: str, request: Request, settings: Settings) -> Response:
    """A reconstruction (200, immutable) or the job still making it."""
    if isinstance(result, bytes):
        return content_response(request, result, MEDIA_TYPES[fmt])
    return job_response(result, request, settings)
