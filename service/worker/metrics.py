"""The worker's Prometheus metrics (stable names; served on ``TADM_WORKER_METRICS_PORT`` when set)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

JOBS = Counter("tadm_worker_jobs_total", "Jobs finished by this worker", ["kind", "outcome"])
FALLBACKS = Counter("tadm_worker_plain_fallbacks_total",
                    "Uploads stored with a plain thumbnail because the model's gave the photo back worse")
PULLED_IN = Counter("tadm_worker_thumbnails_pulled_in_total",
                    "Uploads stored with the model's thumbnail pulled in to the deviation bound (it strayed beyond)")
TILES = Counter("tadm_worker_tiles_total", "Latent tiles denoised")
BATCH_JOBS = Histogram("tadm_worker_batch_jobs", "Jobs per batch", buckets=(1, 2, 4, 8, 16, 32))
UNET_BATCH = Histogram("tadm_worker_unet_batch_tiles", "Tiles per UNet call", buckets=(1, 2, 4, 8, 16, 32, 64))
STAGE_SECONDS = Histogram(
    "tadm_worker_stage_seconds", "Seconds per stage", ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
