"""``/v1/jobs``: status, Server-Sent Events, cancellation."""

from __future__ import annotations

import json
import re

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ...errors import NotFound
from .. import schemas
from ..deps import ReadAccess, ServicesDep, WriteAccess
from ..responses import PROBLEMS
from ..views import job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_JOB_ID = re.compile(r"^[0-9a-f]{24}$")


async def _job(services, job_id: str):
    job = await services.queue.get(job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        raise NotFound(f"no job with id {job_id!r} (unknown, or expired)")
    return job


@router.get("/{job_id}", response_model=schemas.Job, dependencies=[ReadAccess], responses=PROBLEMS)
async def get_job(job_id: str, services: ServicesDep) -> schemas.Job:
    return job_view(await _job(services, job_id), services.settings)


@router.delete("/{job_id}", status_code=202, response_model=schemas.Job, dependencies=[WriteAccess],
               responses=PROBLEMS)
async def cancel_job(job_id: str, services: ServicesDep) -> JSONResponse:
    """Cancel a queued or running job (a finished job is returned unchanged)."""
    await _job(services, job_id)
    job = await services.queue.cancel(job_id)
    if job is None:
        raise NotFound(f"job {job_id} expired")
    return JSONResponse(job_view(job, services.settings).model_dump(mode="json"), status_code=202)


@router.get("/{job_id}/events", dependencies=[ReadAccess],
            responses={200: {"content": {"text/event-stream": {}}}, **PROBLEMS})
async def job_events(job_id: str, services: ServicesDep) -> StreamingResponse:
    """Server-Sent Events: ``event: job`` with the Job JSON on every change; closed after a terminal status."""
    await _job(services, job_id)

    async def stream():
        async for job in services.queue.events(job_id):
            if job is None:  # a comment line keeps proxies from closing an idle stream
                yield ": keep-alive\n\n"
                continue
            payload = json.dumps(job_view(job, services.settings).model_dump(mode="json"))
            yield f"event: job\ndata: {payload}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
