"""Worker registrations: each worker renews a key with a TTL (its heartbeat) holding the model it serves. The
API reads them to answer ``/v1/info`` and ``/readyz`` and to validate thumbnails, without loading a model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from ..redis_client import AsyncRedis, server_time
from ..redis_keys import RedisKeys, as_str

RANDOM_WEIGHTS_WARNING = (
    "the model is the untrained `tiny` preset with RANDOM weights: thumbnails and reconstructions are noise; "
    "train or import a model and set TADM_MODEL"
)


@dataclass(frozen=True)
class ModelInfo:
    """The model a worker serves, as it registers it (the API never loads a model)."""

    model_id: str
    preset: str
    scale: int
    trained: bool
    # what it measured (model.quality.MeasuredQuality.to_dict()); None when no evaluation of these weights exists
    quality: dict | None = None
    # the model's plain rule (model.plain_rule): photos bicubic gives back at this PSNR-Y or more get a plain
    # thumbnail; None when it has none
    plain_rule_psnr_y: float | None = None

    @property
    def preview(self) -> bool:
        return bool(self.quality and self.quality["preview"])

    @classmethod
    def from_dict(cls, data: dict) -> ModelInfo:
        """A registration as stored; fields this version does not know (a newer worker's) are left out."""
        return cls(**{name: value for name, value in data.items() if name in {f.name for f in fields(cls)}})


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's registration: its name, its model, when it started and when it last renewed its heartbeat
    (``beat_at``, by the Redis server's clock, the one clock every host shares)."""

    name: str
    model: ModelInfo
    started_at: float
    beat_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "model": asdict(self.model), "started_at": self.started_at,
                           "beat_at": self.beat_at})

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerInfo:
        data = json.loads(raw)
        return cls(data["name"], ModelInfo.from_dict(data["model"]), data["started_at"], data.get("beat_at", 0.0))


class Registry:
    """Registrations and heartbeats in Redis: workers write them, the API and the dev server read them."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self.redis, self.keys = redis, keys

    async def heartbeat(self, worker: WorkerInfo, ttl_seconds: float) -> None:
        """Register or renew ``worker``; it counts as live for ``ttl_seconds``."""
        worker = replace(worker, beat_at=await server_time(self.redis, self.keys.workers))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.worker(worker.name), worker.to_json(), px=int(ttl_seconds * 1000))
            pipe.sadd(self.keys.workers, worker.name)
            pipe.hset(self.keys.models, worker.model.model_id, json.dumps(asdict(worker.model)))
            await pipe.execute()

    async def unregister(self, name: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.worker(name))
            pipe.srem(self.keys.workers, name)
            await pipe.execute()

    async def is_alive(self, name: str) -> bool:
        return bool(await self.redis.exists(self.keys.worker(name)))

    async def live_workers(self, since: float | None = None) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired; with ``since`` (Redis time), only those that renewed it since
        then: a heartbeat restored from the append-only file, or left by a worker that died just before this
        process started, does not make a freshly started API (or dev server) ready."""
        names = sorted(as_str(name) for name in await self.redis.smembers(self.keys.workers))
        if not names:
            return []
        raws = await self.redis.mget([self.keys.worker(n) for n in names])
        live, dead = [], []
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                dead.append(name)
                continue
            info = WorkerInfo.from_json(raw)
            if since is None or info.beat_at >= since:
                live.append(info)
        if dead:
            await self.redis.srem(self.keys.workers, *dead)
        return live

    async def known_models(self) -> dict[str, ModelInfo]:
        """Every model a worker ever served (a thumbnail of one of them can wait for its worker to return)."""
        raw = await self.redis.hgetall(self.keys.models)
        return {as_str(model_id): ModelInfo.from_dict(json.loads(info)) for model_id, info in raw.items()}

    async def model_for_scale(self, scale: int, since: float | None = None) -> ModelInfo | None:
        """The model that makes new thumbnails at ``scale``: a live worker's (``since``: as for
        :meth:`live_workers`), the most recently started one's when several models serve the same scale (a rolling
        upgrade moves uploads to the new model)."""
        candidates = [w for w in await self.live_workers(since) if w.model.scale == scale]
        if candidates:
            return max(candidates, key=lambda w: w.started_at).model
        return None


def preview_notice(workers: list[WorkerInfo]) -> str | None:
    """What ``/readyz``, ``/v1/info`` and the page say while a live worker serves a preview model: its measured
    PSNR-Y against bicubic (a trained model that has not reached the quality target yet)."""
    previews = {w.model.model_id: w.model for w in workers if w.model.preview}
    if not previews:
        return None
    return "; ".join(f"{m.quality['summary']} (model {m.model_id}, {m.scale}x)"  # type: ignore[index]
                     for _, m in sorted(previews.items()))


def untrained_warning(workers: list[WorkerInfo]) -> str | None:
    """The loud warning of ``/readyz`` and ``/v1/info`` when a live worker runs an untrained model."""
    untrained = sorted({w.model.model_id for w in workers if not w.model.trained})
    if not untrained:
        return None
    return f"{RANDOM_WEIGHTS_WARNING} (model {', '.join(untrained)})"
