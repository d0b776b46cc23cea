"""``/v1/jobs``: status, Server-Sent Events, cancellation."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from .. import schemas, usecases
from ..deps import ReadServices, WriteServices
from ..head import is_head
from ..responses import PROBLEMS
from ..views import job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=schemas.Job, responses=PROBLEMS)
async def get_job(job_id: str, services: ReadServices) -> schemas.Job:
    return job_view(await usecases.find_job(services, job_id), services.settings)


@router.delete("/{job_id}", status_code=202, response_model=schemas.Job,
               responses=PROBLEMS)
async def cancel_job(job_id: str, services: WriteServices) -> JSONResponse:
    """Cancel a queued or running job (a finished job is returned unchanged)."""
    job = await usecases.cancel_job(services, job_id)
    return JSONResponse(job_view(job, services.settings).model_dump(mode="json"), status_code=202)


@router.get("/{job_id}/events",
            responses={200: {"content": {"text/event-stream": {}}}, **PROBLEMS})
async def job_events(job_id: str, request: Request, services: ReadServices) -> Response:
    """Server-Sent Events: ``event: job`` with the Job JSON on every change; closed after a terminal status."""
    await usecases.find_job(services, job_id)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if is_head(request):  # the stream's headers, without holding the connection open for its events
        return Response(media_type="text/event-stream", headers=headers)

    async def stream():
        async for job in services.queue.events(job_id):
            if job is None:  # a comment line keeps proxies from closing an idle stream
                yield ": keep-alive\n\n"
                continue
            payload = json.dumps(job_view(job, services.settings).model_dump(mode="json"))
            yield f"event: job\ndata: {payload}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
