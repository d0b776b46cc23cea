"""Internal records -> response schemas (URLs signed when keys are configured)."""

from __future__ import annotations

from ..config import Settings
from ..queue.jobs import Job as JobRecord
from ..queue.jobs import UpscaleParams
from ..storage.records import ImageRecord
from . import schemas
from .auth import sign_path


def reconstruction_path(model_id: str, thumbnail_sha: str, fmt: str) -> str:
    return f"/v1/reconstructions/{model_id}/{thumbnail_sha}.{fmt}"


def image_view(record: ImageRecord, settings: Settings) -> schemas.Image:
    return schemas.Image(
        id=record.id, width=record.width, height=record.height, scale=record.scale, model_id=record.model_id,
        thumbnail_url=sign_path(settings, f"/v1/images/{record.id}/thumbnail"),
        full_url=sign_path(settings, f"/v1/images/{record.id}/full"),
        original_bytes=record.original_bytes, thumbnail_bytes=record.thumbnail_bytes,
        saving=round(record.saving, 6), created_at=record.created_at, method=record.method, auto=record.auto,
        quality=schemas.Quality(**record.quality) if record.quality else None,
    )


def job_view(job: JobRecord, settings: Settings) -> schemas.Job:
    result_url = None
    params = job.params
    if job.status == "succeeded":
        if isinstance(params, UpscaleParams):
            result_url = sign_path(settings, reconstruction_path(job.model_id, params.thumbnail_sha, params.format))
        else:
            result_url = sign_path(settings, f"/v1/images/{params.image_id}/thumbnail")
    return schemas.Job.model_validate({
        "id": job.id, "kind": job.kind, "status": job.status, "progress": min(max(job.progress, 0.0), 1.0),
        "attempts": job.attempts, "error": job.error, "image_id": params.image_id,
        "result_url": result_url, "created_at": job.created_at, "updated_at": job.updated_at,
    })
