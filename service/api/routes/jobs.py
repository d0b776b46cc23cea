"""``/v1/jobs``: status, Server-Sent Events, cancellation."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from .. import schemas, usecases
from ..deps import ReadAccess, ServicesDep, WriteAccess
from ..head import get_route
from ..responses import PROBLEMS
from ..views import job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@get_route(router, "/{job_id}", response_model=schemas.Job, dependencies=[ReadAccess], responses=PROBLEMS)
async def get_job(job_id: str, services: ServicesDep) -> schemas.Job:
    return job_view(await usecases.find_job(services, job_id), services.settings)


@router.delete("/{job_id}", status_code=202, response_model=schemas.Job, dependencies=[WriteAccess],
               responses=PROBLEMS)
async def cancel_job(job_id: str, services: ServicesDep) -> JSONResponse:
    """Cancel a queued or running job (a finished job is returned unchanged)."""
    job = await usecases.cancel_job(services, job_id)
    return JSONResponse(job_view(job, services.settings).model_dump(mode="json"), status_code=202)


@get_route(router, "/{job_id}/events", dependencies=[ReadAccess],
           responses={200: {"content": {"text/event-stream": {}}}, **PROBLEMS})
async def job_events(job_id: str, request: Request, services: ServicesDep) -> Response:
    """Server-Sent Events: ``event: job`` with the Job JSON on every change; closed after a terminal status."""
    await usecases.find_job(services, job_id)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":  # the stream's headers, without holding the connection open for its events
        return Response(media_type="text/event-stream", headers=headers)

    async def stream():
        async for job in services.queue.events(job_id):
            if job is None:  # a comment line keeps proxies from closing an idle stream
                yield ": keep-alive\n\n"
                continue
            payload = json.dumps(job_view(job, services.settings).model_dump(mode="json"))
            yield f"event: job\ndata: {payload}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
