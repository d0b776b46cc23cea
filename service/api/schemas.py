"""Response bodies of the v1 contract (``docs/http-contract.md``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details; ``type`` is ``urn:tadm:problem:<slug>``."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class Image(BaseModel):
    id: str
    width: int
    height: int
    scale: int
    model_id: str
    thumbnail_url: str
    full_url: str
    original_bytes: int
    thumbnail_bytes: int
    saving: float = Field(description="1 - thumbnail_bytes / original_bytes")
    created_at: float = Field(description="Unix time, seconds")


class ImageList(BaseModel):
    items: list[Image]


class Job(BaseModel):
    id: str
    kind: Literal["downscale", "upscale"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(ge=0.0, le=1.0)
    attempts: int
    error: Problem | None
    image_id: str | None
    result_url: str | None
    created_at: float
    updated_at: float


class ModelSummary(BaseModel):
    model_id: str
    preset: str
    scale: int
    trained: bool


class ModelInfo(BaseModel):
    workers: int
    models: list[ModelSummary]
    warning: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "not-ready"]
    redis: bool
    workers: int
    warning: str | None
