"""Settings of the service: one pydantic-settings class, read from ``TADM_*`` environment variables.

Every limit is a setting with a documented default (``deploy/`` documents them from this class). Tests build a
``Settings(...)`` directly and pass it to ``create_app``; processes call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.thumbnail import SUPPORTED_SCALES
from model.thumbnail_formats import jxl_available
from model.tiling import (  # torch-free: the API reads these settings too
    DEFAULT_TILING,
    NANO_32X_TILING,
    NANO_TILING,
    Tiling,
    check_overrides,
)

from .media import FORMATS


class Settings(BaseSettings):
    """All knobs of the API, the worker and the dev server."""

    model_config = SettingsConfigDict(env_prefix="TADM_", extra="ignore")

    # -- Redis and storage ---------------------------------------------------------------------------------
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis URL (queue, job state, image records). `tadm serve --dev` starts an embedded Redis "
        "when this variable is unset.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="`redis_url` names one node of a Redis Cluster: connect with the cluster client (it "
        "finds the other nodes) and give keys the hash tags that keep each script and transaction in one "
        "slot. The key names differ from a single Redis's (docs/service.md, Redis Cluster).",
    )
    key_prefix: str = Field(default="tadm", description="Prefix of every Redis key, so several services can share one Redis.")
    storage_backend: str = Field(default="local", description="Where bytes live: `local` (a directory) or `s3`.")
    storage_dir: Path = Field(default=Path(".tadm/storage"), description="Root directory of the `local` storage backend.")
    s3_bucket: str = Field(default="tadm", description="Bucket of the `s3` storage backend.")
    s3_prefix: str = Field(default="", description="Key prefix inside the S3 bucket.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2, …); unset means AWS. Credentials come from the "
        "standard AWS variables."
    )
    s3_region: str | None = Field(default=None, description="S3 region; unset means boto3's default.")
    reconstruction_cache_bytes: int = Field(
        default=2 * 1024**3,
        description="Byte budget for cached reconstructions; the least recently used are evicted beyond it.",
    )
    posted_thumbnail_retention_seconds: float = Field(
        default=86400.0, gt=0,
        description="How long a thumbnail posted to `POST /v1/reconstructions` is kept after its last post (the "
        "client keeps its own copy); workers delete older ones.",
    )
    api_memory_cache_bytes: int = Field(
        default=64 * 1024**2, ge=0,
        description="Bytes of thumbnails and reconstructions each API process keeps in memory (content-addressed, "
        "so never stale; whether one still exists is checked in Redis on every read). 0 turns it off.",
    )
    keep_originals: bool = Field(
        default=False, description="Keep uploaded originals after their thumbnail is stored (default: delete them)."
    )
    thumbnail_format: Literal["auto", "png", "webp", "jxl"] = Field(
        default="auto",
        description="How new thumbnails are stored, all lossless: `png`, `webp`, `jxl` (JPEG XL: needs the `jxl` "
        "extra, pillow-jxl-plugin, in the API's and the workers' images alike, since the API converts stored "
        "thumbnails to serve other formats), or `auto`: jxl where that plugin is installed, else webp (on "
        "thumbnails of photos about 19 % and 14 % smaller than png: docs/thumbnail-formats.md). Posted "
        "thumbnails are stored the same way; thumbnails stored before a change are still read.",
    )

    # -- Verified ingest ------------------------------------------------------------------------------------
    verify_uploads: bool = Field(
        default=True,
        description="Reconstruct every new thumbnail once and measure it against the upload before the original "
        "is deleted; a thumbnail that gives the photo back worse than bicubic (by more than `verify_margin_db`) "
        "is replaced by a plain one. Off, uploads are ready sooner but a photo the model cannot give back is "
        "stored anyway and its original deleted: it is lost.",
    )
    verify_margin_db: float = Field(
        default=0.5, ge=0,
        description="How far (dB PSNR-Y) the model's reconstruction may fall below bicubic's from a plain "
        "thumbnail of the same size before the plain thumbnail is stored instead.",
    )
    verify_thumbnail_max_deviation: float = Field(
        default=48.0, ge=0,
        description="The most a stored thumbnail may stray from the bicubic thumbnail of the same photo: the mean "
        "absolute difference, in 8-bit levels, over its worst 4x4-pixel block. Where a model's thumbnail goes "
        "beyond it (a colour blotch over a dark or flat area) the blotch is pulled in to the bound before the "
        "thumbnail is verified, the rest kept as the model made it; so every stored thumbnail looks like a "
        "thumbnail.",
    )
    verify_colour_map: bool = Field(
        default=True,
        description="When verifying, also fit the colour map that brings the reconstruction's colours closest to "
        "the upload (12 numbers, about 95 bytes in the thumbnail's metadata) and store it where it raises "
        "PSNR-Y, then a lattice of colour maps that varies over the photo where it gains more than its bytes "
        "cost; the receiver applies both. It costs no second reconstruction. Off, thumbnails are stored as "
        "the model made them.",
    )
    verify_cached_formats: str = Field(
        default="png,webp",
        description="Formats of the verifying reconstruction kept in the cache as the image's first `/full` "
        f"(comma-separated: {', '.join(FORMATS)}; empty: none).",
    )
    auto_min_psnr_y: float | None = Field(
        default=30.0,
        description="`scale=auto` uploads without `min_psnr_y`: the PSNR-Y (dB) the reconstruction must reach.",
    )
    auto_min_ssimulacra2: float | None = Field(
        default=None,
        description="`scale=auto` uploads without `min_ssimulacra2`: the SSIMULACRA2 score the reconstruction "
        "must reach (unset: not asked for).",
    )

    # -- HTTP limits and behaviour --------------------------------------------------------------------------
    max_upload_bytes: int = Field(default=50 * 1024**2, description="Largest accepted request body, in bytes (413 above).")
    max_image_pixels: int = Field(
        default=40_000_000, description="Largest accepted image, in pixels, read from the header before decoding (422 above)."
    )
    upload_wait_seconds: float = Field(
        default=10.0, description="How long an upload waits for its thumbnail before answering 202 with a job."
    )
    max_wait_seconds: float = Field(default=60.0, description="Upper bound on `Prefer: wait=N` for any request.")
    retry_after_seconds: int = Field(default=2, description="`Retry-After` sent with 202 (job pending) and 503 (queue full).")
    variant_widths: str = Field(
        default="160,320,480,640,960,1280,1920,2560",
        description="Comma-separated widths `?w=` may ask of a reconstruction (each variant is derived once from "
        "the cached reconstruction and cached under its own key); other widths get 422, which bounds what a "
        "client can make the origin compute and store.",
    )
    list_limit_max: int = Field(default=100, description="Largest `limit` of `GET /v1/images`.")
    api_keys: str = Field(
        default="", description="Comma-separated API keys; when set, writes need `Authorization: Bearer <key>`. Empty: off."
    )
    signing_key: str = Field(
        default="", description="HMAC-SHA256 key for signed read URLs; required when `api_keys` is set."
    )
    signed_url_ttl_seconds: int = Field(
        default=86400, description="Lifetime of signed URLs; expiry is rounded up to a multiple of it so URLs stay cacheable."
    )

    # -- Queue ----------------------------------------------------------------------------------------------
    queue_max_length: int = Field(
        default=1000, description="Most unfinished jobs per stream (model and priority); beyond it uploads get 503."
    )
    job_ttl_seconds: int = Field(default=7 * 86400, description="How long a job's state is kept after its last change.")
    max_attempts: int = Field(default=3, description="Deliveries of a job before it goes to the dead-letter stream.")
    retry_backoff_seconds: float = Field(
        default=2.0, description="Delay before the first retry of a transient failure; doubles with every attempt."
    )
    heartbeat_interval_seconds: float = Field(default=2.0, description="How often a worker renews its heartbeat.")
    heartbeat_timeout_seconds: float = Field(
        default=15.0, description="A worker silent this long is dead: its jobs are reclaimed by the others."
    )

    # -- Worker ---------------------------------------------------------------------------------------------
    model: Path | None = Field(default=None, description="Model directory the worker loads (overrides the preset).")
    model_preset: str = Field(default="nano", description="Preset the worker builds when `model` is unset.")
    model_scale: int = Field(
        default=16, description=f"Scale of the preset model: {' or '.join(map(str, SUPPORTED_SCALES))}."
    )
    allow_random_weights: bool = Field(
        default=False,
        description="When the preset's trained weights are missing, run the `tiny` preset with random weights "
        "(the dev server sets this; reconstructions are then noise).",
    )
    device: str | None = Field(default=None, description="Torch device of the worker (`cpu`, `cuda:0`); unset: auto.")
    worker_name: str | None = Field(default=None, description="Consumer name in Redis; unset: `<hostname>-<pid>`.")
    worker_batch_size: int = Field(default=4, description="Jobs a worker takes per batch (their tiles share UNet calls).")
    # The fields of model.tiling.Tiling, by its names; unset, the model's own default (`tiling_for`).
    tile_size: int | None = Field(
        default=None, description="Latent tile size of the upscaler; unset: the model's (nano 16x "
        f"{NANO_TILING.tile_size}, nano 32x {NANO_32X_TILING.tile_size}, the paper's {DEFAULT_TILING.tile_size})."
    )
    tile_stride: int | None = Field(
        default=None, description="Latent tile stride of the upscaler; unset: the model's (nano 16x "
        f"{NANO_TILING.tile_stride}, nano 32x {NANO_32X_TILING.tile_stride}, the paper's {DEFAULT_TILING.tile_stride})."
    )
    tile_batch_size: int | None = Field(
        default=None, description=f"Latent tiles per UNet call; unset: {DEFAULT_TILING.tile_batch_size}."
    )
    worker_metrics_port: int = Field(default=0, description="Port of the worker's Prometheus endpoint; 0 turns it off.")

    # -- Serving --------------------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address `tadm serve` binds.")
    port: int = Field(default=8000, description="Port `tadm serve` binds.")
    api_workers: int = Field(
        default=1, description="API processes `tadm serve` runs on its port (`--workers`); each has its own Redis "
        "pool and in-memory cache. In Kubernetes, prefer replicas."
    )

    def tiling_for(self, model_default: Tiling) -> Tiling:
        """The upscaler's tiling: the model's default (``pipe.default_tiling``) with the knobs set here."""
        return model_default.overridden(self.tile_size, self.tile_stride, self.tile_batch_size)

    @model_validator(mode="after")
    def _tiling_fits(self) -> Settings:
        # A zero, or a stride above the tile size set with it, is refused when the process starts, naming the
        # knob, rather than failing every reconstruction later (a stride alone is checked against the model's
        # tile size when the worker has loaded it).
        check_overrides(self.tile_size, self.tile_stride, self.tile_batch_size)
        return self

    @property
    def stored_thumbnail_format(self) -> str:
        """The format new thumbnails are stored in (``thumbnail_format`` with ``auto`` decided)."""
        if self.thumbnail_format != "auto":
            return self.thumbnail_format
        return "jxl" if jxl_available() else "webp"

    @model_validator(mode="after")
    def _thumbnail_format_readable(self) -> Settings:
        # Refused when the process starts rather than on every upload.
        if self.thumbnail_format == "jxl" and not jxl_available():
            raise ValueError("TADM_THUMBNAIL_FORMAT=jxl needs the pillow-jxl-plugin package (the `jxl` extra)")
        return self

    @property
    def verify_cached_format_list(self) -> tuple[str, ...]:
        return tuple(f.strip() for f in self.verify_cached_formats.split(",") if f.strip())

    @model_validator(mode="after")
    def _cached_formats_known(self) -> Settings:
        unknown = set(self.verify_cached_format_list) - set(FORMATS)
        if unknown:
            raise ValueError(f"TADM_VERIFY_CACHED_FORMATS names unknown formats {sorted(unknown)}: "
                             f"use {', '.join(FORMATS)}")
        return self

    @field_validator("model_scale")
    @classmethod
    def _scale_supported(cls, scale: int) -> int:
        # Refused when the process starts, naming the variable, rather than when the preset is built.
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"TADM_MODEL_SCALE must be {' or '.join(map(str, SUPPORTED_SCALES))} but is {scale}")
        return scale

    @property
    def variant_width_list(self) -> list[int]:
        return sorted({int(w) for w in self.variant_widths.split(",") if w.strip()})

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
