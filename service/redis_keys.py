"""Names of every Redis key the service uses, in one place, all under the configured prefix (shared by the
queue, the worker registry, the image records and the reconstruction cache).

On a Redis Cluster (``TADM_REDIS_CLUSTER``) a script, a transaction or a multi-key command may only touch keys
of one hash slot, and a key's slot is the hash of its ``{tag}`` when it has one. Keys used together therefore
share a tag there:

- the queue (``{<prefix>:queue}``): job hashes, job streams, retry sets and the dead letters. Enqueueing is
  one script over a job's hash and its model's stream, and a worker reads both priorities of its model in one
  ``XREADGROUP``; the queue's traffic is bounded by the workers, not by readers, so one slot carries it.
- the worker registry (``{<prefix>:registry}``) and the reconstruction cache's bookkeeping
  (``{<prefix>:recon}``), each written in one transaction.
- one image's keys (its record and its upload's job id) by the image id (``{<id>}``).

The rest stand alone. On a single Redis the names stay as they always were (no tags), so an existing
deployment keeps its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# The queues of a model, and the one list of them: a worker reads them in this order (interactive jobs first).
Priority = Literal["interactive", "background"]
PRIORITIES: tuple[str, ...] = get_args(Priority)


def as_str(value: bytes | str) -> str:
    """A Redis reply item as ``str`` (replies are bytes; some client paths already decode)."""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class RedisKeys:
    """The keys of one service instance (``TADM_KEY_PREFIX``); several can share one Redis. ``cluster``: the
    hash-tagged names of a Redis Cluster."""

    prefix: str = "tadm"
    cluster: bool = False

    def _grouped(self, group: str, name: str) -> str:
        """A key of a group used together: one slot in a cluster (tag ``{prefix:group}``)."""
        return f"{{{self.prefix}:{group}}}:{name}" if self.cluster else f"{self.prefix}:{name}"

    def _own(self, kind: str, ident: str) -> str:
        """A key of one object (an image): its keys share the tag ``{ident}`` in a cluster."""
        return f"{self.prefix}:{kind}:{{{ident}}}" if self.cluster else f"{self.prefix}:{kind}:{ident}"

    # -- the queue -------------------------------------------------------------------------------------------
    def stream(self, model_id: str, priority: str) -> str:
        """The job stream of one model and priority (a worker reads only its own model's streams)."""
        return self._grouped("queue", f"jobs:{model_id}:{priority}")

    def job(self, job_id: str) -> str:
        return self._grouped("queue", f"job:{job_id}")

    def delayed(self, model_id: str, priority: str) -> str:
        """Sorted set of the job ids of one stream waiting out their retry backoff, scored by when due."""
        return self._grouped("queue", f"delayed:{model_id}:{priority}")

    @property
    def dead_letter(self) -> str:
        return self._grouped("queue", "dead")

    def job_events(self, job_id: str) -> str:
        """Pub/sub channel: a message on every change of the job (a channel, not a key: no slot)."""
        return f"{self.prefix}:events:{job_id}"

    @property
    def group(self) -> str:
        """The workers' consumer group (a name inside each stream, not a key)."""
        return f"{self.prefix}-workers"

    # -- images ----------------------------------------------------------------------------------------------
    def image(self, image_id: str) -> str:
        return self._own("image", image_id)

    def upload_job(self, image_id: str) -> str:
        """The id of the downscale job making the image (so that deleting the image can cancel it)."""
        return self._own("upload", image_id)

    @property
    def images(self) -> str:
        """Sorted set of image ids by creation time (for listing, newest first)."""
        return f"{self.prefix}:images"

    def originals(self, original_sha: str) -> str:
        """Set of image ids made from an upload with this content hash (a re-sent file is found, not re-sent)."""
        return f"{self.prefix}:originals:{original_sha}"

    @property
    def stats(self) -> str:
        """Hash of store-wide totals kept as images come and go: images, original_bytes, stored_bytes,
        verified, fallbacks."""
        return f"{self.prefix}:stats"

    def thumbnail_refs(self, thumbnail_sha: str) -> str:
        """Set of image ids whose thumbnail has this hash (deleted with the last of them)."""
        return f"{self.prefix}:thumbrefs:{thumbnail_sha}"

    @property
    def posted_thumbnails(self) -> str:
        """Sorted set of the storage keys of thumbnails posted to /v1/reconstructions, by when last posted."""
        return f"{self.prefix}:posted"

    # -- the worker registry ---------------------------------------------------------------------------------
    def worker(self, name: str) -> str:
        """A worker's heartbeat and registration (expires when the worker stops renewing it)."""
        return self._grouped("registry", f"worker:{name}")

    @property
    def workers(self) -> str:
        """Set of worker names that registered (stale ones are pruned when read)."""
        return self._grouped("registry", "workers")

    @property
    def models(self) -> str:
        """Hash model id -> registration JSON of every model a worker has served (validates thumbnails)."""
        return self._grouped("registry", "models")

    # -- the reconstruction cache ----------------------------------------------------------------------------
    @property
    def recon_lru(self) -> str:
        """Sorted set of reconstruction keys by last access (the eviction order)."""
        return self._grouped("recon", "recon:lru")

    @property
    def recon_sizes(self) -> str:
        return self._grouped("recon", "recon:sizes")

    @property
    def recon_bytes(self) -> str:
        return self._grouped("recon", "recon:bytes")
