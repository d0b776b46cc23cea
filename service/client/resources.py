"""The API's resources as frozen dataclasses: the same fields as the response schemas of
``service.api.schemas`` (a test keeps them equal), read from JSON without pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROBLEM_PREFIX = "urn:tadm:problem:"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem: ``type`` is stable (``urn:tadm:problem:<slug>``); ``extensions`` holds other members."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The last part of ``type`` (``not-found``), or the whole type when it is not one of ours."""
        return self.type.removeprefix(PROBLEM_PREFIX)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Problem:
        known = {"type", "title", "status", "detail", "instance"}
        return cls(
            type=str(data.get("type") or "about:blank"),
            title=str(data.get("title") or ""),
            status=int(data.get("status") or 0),
            detail=data.get("detail"),
            instance=data.get("instance"),
            extensions={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class Image:
    """A stored image: its thumbnail is kept, the original is not. ``saving`` = 1 - thumbnail/original bytes."""

    id: str
    width: int
    height: int
    scale: int
    model_id: str
    thumbnail_url: str
    full_url: str
    original_bytes: int
    thumbnail_bytes: int
    saving: float
    created_at: str | float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Image:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Job:
    """A background job (``downscale`` after an upload, ``upscale`` for a reconstruction)."""

    id: str
    kind: str
    status: str
    progress: float
    attempts: int
    error: Problem | None
    image_id: str | None
    result_url: str | None
    created_at: str | float
    updated_at: str | float

    @property
    def done(self) -> bool:
        """True once the job can change no more (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=data["id"], kind=data["kind"], status=data["status"],
            progress=float(data.get("progress") or 0.0), attempts=int(data.get("attempts") or 0),
            error=Problem.from_json(data["error"]) if data.get("error") else None,
            image_id=data.get("image_id"), result_url=data.get("result_url"),
            created_at=data.get("created_at", ""), updated_at=data.get("updated_at", ""),
        )


@dataclass(frozen=True)
class ModelSummary:
    """One model a live worker serves. ``trained`` is False for random weights (the ``tiny`` test preset)."""

    model_id: str
    preset: str
    scale: int
    trained: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSummary:
        return cls(data["model_id"], data["preset"], int(data["scale"]), bool(data["trained"]))


@dataclass(frozen=True)
class ModelInfo:
    """What the live workers serve (``GET /v1/info``); ``warning`` is set e.g. when a model is untrained."""

    workers: int
    models: list[ModelSummary]
    warning: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        models = [ModelSummary.from_json(model) for model in data.get("models", [])]
        return cls(workers=int(data.get("workers", 0)), models=models, warning=data.get("warning"))
