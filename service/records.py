"""Image records: what the service knows about a stored image, kept in a Redis hash per image plus a sorted
set for listing. Redis persistence (AOF) is what makes them durable."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from .rkeys import RedisKeys, text


@dataclass
class ImageRecord:
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

    @property
    def saving(self) -> float:
        return 1 - self.thumbnail_bytes / self.original_bytes if self.original_bytes else 0.0


class ImageRecords:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis, self.keys = redis, keys

    async def save(self, record: ImageRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.image(record.id), json.dumps(asdict(record)))
            pipe.zadd(self.keys.images, {record.id: record.created_at})
            pipe.sadd(self.keys.thumbnail_refs(record.thumbnail_sha), record.id)
            await pipe.execute()

    async def get(self, image_id: str) -> ImageRecord | None:
        raw = await self.redis.get(self.keys.image(image_id))
        return ImageRecord(**json.loads(raw)) if raw else None

    async def newest(self, limit: int) -> list[ImageRecord]:
        ids: list = await self.redis.zrevrange(self.keys.images, 0, limit - 1)
        if not ids:
            return []
        raws = await self.redis.mget([self.keys.image(text(i)) for i in ids])
        return [ImageRecord(**json.loads(r)) for r in raws if r]

    async def delete(self, record: ImageRecord) -> int:
        """Remove the record; returns how many other images still use its thumbnail (identical pixels from
        different uploads share one content-addressed thumbnail)."""
        refs = self.keys.thumbnail_refs(record.thumbnail_sha)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.image(record.id))
            pipe.zrem(self.keys.images, record.id)
            pipe.srem(refs, record.id)
            pipe.scard(refs)
            *_, remaining = await pipe.execute()
        return int(remaining)


def now() -> float:
    return round(time.time(), 3)
