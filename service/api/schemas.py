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


class ModelQuality(BaseModel):
    """What a model measured on an evaluation set against bicubic at the same thumbnail size; ``preview`` until
    it reaches the release bar (PSNR-Y >= bicubic + 1.5 dB at 16x, + 1.0 dB at 32x, MS-SSIM-Y above bicubic)."""

    evaluation_set: str
    images: int
    psnr_y: float
    bicubic_psnr_y: float
    ms_ssim_y: float | None
    bicubic_ms_ssim_y: float | None
    release_psnr_y: float
    preview: bool
    summary: str


class ModelSummary(BaseModel):
    model_id: str
    preset: str
    scale: int
    trained: bool
    quality: ModelQuality | None = None


class ModelInfo(BaseModel):
    workers: int
    models: list[ModelSummary]
    warning: str | None
    notice: str | None = None  # "preview model: …" while a live worker serves a model below the release bar


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "not-ready"]
    redis: bool
    workers: int
    warning: str | None
    notice: str | None = None
