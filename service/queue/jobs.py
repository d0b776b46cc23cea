"""The job record: what a job is, its typed parameters, how its deterministic id is made, and its
(de)serialisation to a Redis hash, in one place.

Two operations, each with its parameters as a dataclass: ``downscale`` (:class:`DownscaleParams`: an uploaded
original becomes a thumbnail and an image record) and ``upscale`` (:class:`UpscaleParams`: a thumbnail becomes a
reconstruction in a format). Build jobs with :func:`downscale_job` and :func:`upscale_job`, which make the id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class DownscaleParams:
    """Turn the stored original ``input_key`` into the thumbnail and record of image ``image_id``.

    ``scale=auto`` uploads carry their quality target and the scales still to try after the job's model's
    (most compact first): a worker whose thumbnail misses the target hands the job to the next scale's model."""

    image_id: str
    input_key: str  # storage key of the uploaded original (deleted once the image is final)
    original_bytes: int  # the upload's size, kept in the record (the storage saving)
    original_sha256: str = ""  # the upload's content hash, kept in the record (a re-sent file is found)
    auto: bool = False
    next_scales: tuple[int, ...] = ()
    min_psnr_y: float | None = None
    min_ssimulacra2: float | None = None


@dataclass(frozen=True)
class UpscaleParams:
    """Reconstruct the stored thumbnail ``thumbnail_key`` (hash ``thumbnail_sha``) and encode it as ``format``."""

    thumbnail_key: str
    thumbnail_sha: str
    format: str  # png, webp or jpeg
    image_id: str | None = None  # the image it belongs to; None for a thumbnail the client sent itself


JobParams = DownscaleParams | UpscaleParams
KINDS: dict[str, type[DownscaleParams] | type[UpscaleParams]] = {"downscale": DownscaleParams,
                                                                 "upscale": UpscaleParams}


def job_id_for(kind: str, input_sha: str, model_id: str, identity: dict) -> str:
    """Same operation, input, model and output-deciding parameters -> same id, so a duplicate request finds the
    existing job."""
    canonical = json.dumps([kind, input_sha, model_id, identity], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass
class Job:
    id: str
    model_id: str
    priority: str
    params: JobParams
    status: str = "queued"
    progress: float = 0.0
    attempts: int = 0
    error: dict | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def kind(self) -> str:
        return "downscale" if isinstance(self.params, DownscaleParams) else "upscale"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_hash(self) -> dict[str, str]:
        """Flat string fields for HSET."""
        return {
            "id": self.id, "kind": self.kind, "model_id": self.model_id, "priority": self.priority,
            "params": json.dumps(asdict(self.params)), "status": self.status, "progress": str(self.progress),
            "attempts": str(self.attempts), "error": json.dumps(self.error),
            "created_at": str(self.created_at), "updated_at": str(self.updated_at),
        }

    @classmethod
    def from_hash(cls, raw: dict) -> Job:
        h = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in raw.items()}
        return cls(
            id=h["id"], model_id=h["model_id"], priority=h["priority"],
            params=KINDS[h["kind"]](**json.loads(h["params"])), status=h["status"],
            progress=float(h.get("progress") or 0), attempts=int(h.get("attempts") or 0),
            error=json.loads(h.get("error") or "null"), created_at=float(h["created_at"]),
            updated_at=float(h.get("updated_at") or h["created_at"]),
        )


def downscale_job(params: DownscaleParams, *, original_sha: str, model_id: str, scale: int, priority: str,
                  identity_extra: dict | None = None) -> Job:
    """The job that makes the thumbnail of an upload: one per (original bytes, model, scale), and per image for
    ``scale=auto`` (``identity_extra``: its image id names the models tried and the target)."""
    identity = {"scale": scale, **(identity_extra or {})}
    return Job(id=job_id_for("downscale", original_sha, model_id, identity), model_id=model_id,
               priority=priority, params=params)


def upscale_job_id(thumbnail_sha: str, model_id: str, fmt: str) -> str:
    """The id of the job reconstructing a thumbnail: one per (thumbnail bytes, model, format)."""
    return job_id_for("upscale", thumbnail_sha, model_id, {"format": fmt})


def upscale_job(params: UpscaleParams, *, model_id: str, priority: str) -> Job:
    """The job that reconstructs a thumbnail: one per (thumbnail bytes, model, format)."""
    return Job(id=upscale_job_id(params.thumbnail_sha, model_id, params.format), model_id=model_id,
               priority=priority, params=params)
