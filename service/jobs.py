"""The job record: what a job is, how its deterministic id is made, and its (de)serialisation to a Redis hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

TERMINAL = ("succeeded", "failed", "cancelled")
KINDS = ("downscale", "upscale")


def job_id_for(kind: str, input_sha: str, model_id: str, params: dict) -> str:
    """Same operation, input, model and parameters -> same id, so a duplicate request finds the existing job."""
    canonical = json.dumps([kind, input_sha, model_id, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass
class Job:
    id: str
    kind: str
    model_id: str
    priority: str
    params: dict  # downscale: image_id, input_key, scale, original_bytes; upscale: thumbnail_key/sha, format
    status: str = "queued"
    progress: float = 0.0
    attempts: int = 0
    error: dict | None = None
    image_id: str | None = None
    result_key: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_hash(self) -> dict[str, str]:
        """Flat string fields for HSET."""
        return {
            "id": self.id, "kind": self.kind, "model_id": self.model_id, "priority": self.priority,
            "params": json.dumps(self.params), "status": self.status, "progress": str(self.progress),
            "attempts": str(self.attempts), "error": json.dumps(self.error), "image_id": self.image_id or "",
            "result_key": self.result_key or "", "created_at": str(self.created_at),
            "updated_at": str(self.updated_at),
        }

    @classmethod
    def from_hash(cls, raw: dict) -> Job:
        h = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in raw.items()}
        return cls(
            id=h["id"], kind=h["kind"], model_id=h["model_id"], priority=h["priority"],
            params=json.loads(h["params"]), status=h["status"], progress=float(h.get("progress") or 0),
            attempts=int(h.get("attempts") or 0), error=json.loads(h.get("error") or "null"),
            image_id=h.get("image_id") or None, result_key=h.get("result_key") or None,
            created_at=float(h["created_at"]), updated_at=float(h.get("updated_at") or h["created_at"]),
        )
