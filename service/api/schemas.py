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


class Quality(BaseModel):
    """The stored thumbnail's reconstruction (at the default output) measured against the upload before the
    original was deleted, beside bicubic from a plain thumbnail of the same size."""

    method: Literal["tadm", "plain"] = Field(
        description="tadm: the model's thumbnail; plain: classical resampling, stored because the model's gave "
        "the photo back worse than bicubic, because bicubic already gives it back at the model's plain-rule "
        "threshold, or (scale=auto) because every scale missed the target")
    psnr_y: float
    ms_ssim_y: float | None = Field(description="None for an image too small for five scales")
    ssimulacra2: float
    bicubic_psnr_y: float
    thumbnail_deviation: float = Field(description="the stored thumbnail's worst 4x4-pixel deviation from the "
                                       "bicubic thumbnail, in 8-bit levels (0 for a plain thumbnail)")
    thumbnail_pulled_in: bool = Field(
        default=False, description="the model's thumbnail strayed beyond TADM_VERIFY_THUMBNAIL_MAX_DEVIATION "
        "somewhere and was pulled in to it (there only) before it was verified and stored")
    colour_map: bool = Field(
        default=False, description="the stored thumbnail carries the sender's colour map (TADM_VERIFY_COLOUR_MAP), "
        "which every reconstruction applies")
    colour_lattice: str | None = Field(
        default=None, description="the size (rows x cols, e.g. 8x8) of the lattice of colour maps the stored "
        "thumbnail carries, applied after the colour map; None without one")


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
    method: Literal["tadm", "plain"] = Field(description="how the stored thumbnail was made")
    auto: bool = Field(description="the scale was chosen by a quality target (scale=auto)")
    quality: Quality | None = Field(description="what verification measured; None when the image was stored "
                                    "without verification (TADM_VERIFY_UPLOADS off)")


class Stats(BaseModel):
    """Store-wide totals over the images stored now."""

    images: int
    original_bytes: int = Field(description="the uploads' sizes, as received")
    stored_bytes: int = Field(description="the stored thumbnails' sizes")
    saving: float = Field(description="1 - stored_bytes / original_bytes")
    verified: int = Field(description="images whose thumbnail was verified before the original was deleted")
    fallbacks: int = Field(description="images stored with a plain thumbnail")


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
    it reaches the quality target (PSNR-Y >= bicubic + 1.5 dB at 16x, + 1.0 dB at 32x, MS-SSIM-Y above bicubic)."""

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
    plain_rule_psnr_y: float | None = Field(
        default=None, description="the model's plain rule: an upload that bicubic from a plain thumbnail already "
        "gives back at this PSNR-Y (dB) or more is stored with the plain thumbnail; null when the model has none")


class ModelInfo(BaseModel):
    workers: int
    models: list[ModelSummary]
    warning: str | None
    notice: str | None = None  # "preview model: …" while a live worker serves a model below the quality target


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "not-ready"]
    redis: bool
    workers: int
    warning: str | None
    notice: str | None = None
