"""Names of every Redis key the service uses, in one place, all under the configured prefix (shared by the
queue, the worker registry, the image records and the reconstruction cache)."""

from __future__ import annotations

from dataclasses import dataclass

PRIORITIES = ("interactive", "background")  # read in this order: interactive jobs go first


def as_str(value: bytes | str) -> str:
    """A Redis reply item as ``str`` (replies are bytes; some client paths already decode)."""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class RedisKeys:
    """The keys of one service instance (``TADM_KEY_PREFIX``); several can share one Redis."""

    prefix: str = "tadm"

    def stream(self, model_id: str, priority: str) -> str:
        """The job stream of one model and priority (a worker reads only its own model's streams)."""
        return f"{self.prefix}:jobs:{model_id}:{priority}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def job_events(self, job_id: str) -> str:
        """Pub/sub channel: a message on every change of the job."""
        return f"{self.prefix}:events:{job_id}"

    @property
    def group(self) -> str:
        return f"{self.prefix}-workers"

    @property
    def delayed(self) -> str:
        """Sorted set of (stream, job id) waiting out a retry backoff, scored by when they are due."""
        return f"{self.prefix}:delayed"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:dead"

    def image(self, image_id: str) -> str:
        return f"{self.prefix}:image:{image_id}"

    @property
    def images(self) -> str:
        """Sorted set of image ids by creation time (for listing, newest first)."""
        return f"{self.prefix}:images"

    def upload_job(self, image_id: str) -> str:
        """The id of the downscale job making the image (so that deleting the image can cancel it)."""
        return f"{self.prefix}:upload:{image_id}"

    @property
    def posted_thumbnails(self) -> str:
        """Sorted set of the storage keys of thumbnails posted to /v1/reconstructions, by when last posted."""
        return f"{self.prefix}:posted"

    def thumbnail_refs(self, thumbnail_sha: str) -> str:
        """Set of image ids whose thumbnail has this hash (deleted with the last of them)."""
        return f"{self.prefix}:thumbrefs:{thumbnail_sha}"

    def worker(self, name: str) -> str:
        """A worker's heartbeat and registration (expires when the worker stops renewing it)."""
        return f"{self.prefix}:worker:{name}"

    @property
    def workers(self) -> str:
        """Set of worker names that registered (stale ones are pruned when read)."""
        return f"{self.prefix}:workers"

    @property
    def models(self) -> str:
        """Hash model id -> registration JSON of every model a worker has served (validates thumbnails)."""
        return f"{self.prefix}:models"

    @property
    def recon_lru(self) -> str:
        """Sorted set of reconstruction keys by last access (the eviction order)."""
        return f"{self.prefix}:recon:lru"

    @property
    def recon_sizes(self) -> str:
        return f"{self.prefix}:recon:sizes"

    @property
    def recon_bytes(self) -> str:
        return f"{self.prefix}:recon:bytes"
