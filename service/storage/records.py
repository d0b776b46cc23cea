"""Image records: what the service knows about a stored image, kept in a Redis hash per image plus a sorted
set for listing. Redis persistence (AOF) is what makes them durable.

An image's record, the listing and the set of images sharing its thumbnail are three slots on a Redis
Cluster, so no transaction spans them: they are written one at a time, in an order whose every prefix is
harmless (a listed id without a record is skipped; a reference without a record only keeps a thumbnail a
little longer).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Literal

from ..redis_client import AsyncRedis
from ..redis_keys import RedisKeys, as_str


@dataclass
class ImageRecord:
    """What the service knows about one stored image (its original is gone; its thumbnail is kept)."""

    id: str
    width: int
    height: int
    scale: int
    model_id: str
    thumbnail_key: str  # storage key of the PNG (content-addressed)
    thumbnail_sha: str
    original_bytes: int
    thumbnail_bytes: int
    created_at: float
    original_sha256: str = ""
    # how the stored thumbnail was made ("tadm" or "plain") and what its reconstruction measured against the
    # upload (service.worker.verify.Quality); None for an image stored without verification
    quality: dict | None = None
    auto: bool = False  # the scale was chosen by a quality target (scale=auto)

    @property
    def method(self) -> Literal["tadm", "plain"]:
        return "plain" if self.quality and self.quality["method"] == "plain" else "tadm"

    @property
    def saving(self) -> float:
        return 1 - self.thumbnail_bytes / self.original_bytes if self.original_bytes else 0.0


class ImageRecords:
    """The image records of one service instance: workers save them, the API reads and deletes them."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self.redis, self.keys = redis, keys

    async def save(self, record: ImageRecord) -> None:
        # The reference first (the thumbnail is never deleted under an image that uses it), the record last
        # (it makes the image exist); SET NX: a twin job that got here first made the totals count it already.
        await self.redis.sadd(self.keys.thumbnail_refs(record.thumbnail_sha), record.id)
        await self.redis.zadd(self.keys.images, {record.id: record.created_at})
        if record.original_sha256:
            await self.redis.sadd(self.keys.originals(record.original_sha256), record.id)
        if await self.redis.set(self.keys.image(record.id), json.dumps(asdict(record)), nx=True):
            await self._count(record, 1)

    async def _count(self, record: ImageRecord, sign: int) -> None:
        """Add (``sign`` 1) or remove (-1) the record from the store-wide totals."""
        async with self.redis.pipeline(transaction=True) as pipe:  # one key
            pipe.hincrby(self.keys.stats, "images", sign)
            pipe.hincrby(self.keys.stats, "original_bytes", sign * record.original_bytes)
            pipe.hincrby(self.keys.stats, "stored_bytes", sign * record.thumbnail_bytes)
            pipe.hincrby(self.keys.stats, "verified", sign * (record.quality is not None))
            pipe.hincrby(self.keys.stats, "fallbacks", sign * (record.method == "plain"))
            await pipe.execute()

    async def totals(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.stats)
        names = ("images", "original_bytes", "stored_bytes", "verified", "fallbacks")
        values = {as_str(k): int(v) for k, v in raw.items()}
        return {name: values.get(name, 0) for name in names}

    async def with_original(self, original_sha: str) -> list[ImageRecord]:
        """The stored images made from an upload with this content hash."""
        ids = sorted(as_str(i) for i in await self.redis.smembers(self.keys.originals(original_sha)))
        records = [await self.get(image_id) for image_id in ids]
        return [record for record in records if record is not None]

    async def get(self, image_id: str) -> ImageRecord | None:
        raw = await self.redis.get(self.keys.image(image_id))
        return ImageRecord(**json.loads(raw)) if raw else None

    async def newest(self, limit: int) -> list[ImageRecord]:
        ids: list = await self.redis.zrevrange(self.keys.images, 0, limit - 1)
        if not ids:
            return []
        # One GET per record (records live in their own slots on a cluster: no MGET), in one round trip.
        async with self.redis.pipeline(transaction=False) as pipe:
            for image_id in ids:
                pipe.get(self.keys.image(as_str(image_id)))
            raws = await pipe.execute()
        return [ImageRecord(**json.loads(raw)) for raw in raws if raw]

    async def delete(self, record: ImageRecord) -> int:
        """Remove the record; returns how many other images still use its thumbnail (identical pixels from
        different uploads share one content-addressed thumbnail)."""
        # The record first (the image stops existing), the reference last, as ``save`` in reverse.
        if await self.redis.delete(self.keys.image(record.id)):
            await self._count(record, -1)
        await self.redis.zrem(self.keys.images, record.id)
        if record.original_sha256:
            await self.redis.srem(self.keys.originals(record.original_sha256), record.id)
        refs = self.keys.thumbnail_refs(record.thumbnail_sha)
        async with self.redis.pipeline(transaction=True) as pipe:  # one key: the count just after the removal
            pipe.srem(refs, record.id)
            pipe.scard(refs)
            _, remaining = await pipe.execute()
        return int(remaining)


    async def set_upload_job(self, image_id: str, job_id: str, ttl_seconds: int) -> None:
        """Remember the downscale job making ``image_id`` (as long as the job's own state lives)."""
        await self.redis.set(self.keys.upload_job(image_id), job_id, ex=ttl_seconds)

    async def upload_job(self, image_id: str) -> str | None:
        raw = await self.redis.get(self.keys.upload_job(image_id))
        return as_str(raw) if raw else None

    async def forget_upload_job(self, image_id: str) -> None:
        await self.redis.delete(self.keys.upload_job(image_id))


def image_id_for(original_sha: str, model_id: str, scale: int) -> str:
    """The same original, model and scale -> the same image (a duplicate upload finds the stored one)."""
    return hashlib.sha256(f"{original_sha}:{model_id}:{scale}".encode()).hexdigest()[:20]


def now() -> float:
    return round(time.time(), 3)
