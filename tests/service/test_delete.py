"""Deleting an image stops its work and leaves nothing servable; posted thumbnails do not pile up. The API
in-process and the worker in-process with the real tiny pipeline, on the session's real Redis and storage."""

from __future__ import annotations

import asyncio
import time

import pytest
from PIL import Image
from redis.asyncio import Redis

from service.queue.registry import ModelInfo, Registry, WorkerInfo
from service.redis_keys import RedisKeys
from service.storage import reconstruction_key, sha256_hex, thumbnail_key
from service.storage.records import ImageRecord
from service.wiring import build_services

pytestmark = pytest.mark.anyio
MODEL_ID = "abcdef0123456789"


async def _register(settings, model_id: str = MODEL_ID) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        info = WorkerInfo("w", ModelInfo(model_id, "tiny", 16, False), time.time())
        await Registry(redis, RedisKeys(settings.key_prefix)).heartbeat(info, 60)
    finally:
        await redis.aclose()


async def _store_image(services, png: bytes, model_id: str = MODEL_ID) -> ImageRecord:
    """An image as a worker leaves it: thumbnail stored, record saved."""
    sha = sha256_hex(png)
    services.storage.put(thumbnail_key(sha), png)
    record = ImageRecord(id="cd" * 10, width=256, height=192, scale=16, model_id=model_id,
                         thumbnail_key=thumbnail_key(sha), thumbnail_sha=sha, original_bytes=90000,
                         thumbnail_bytes=len(png), created_at=time.time())
    await services.records.save(record)
    return record


async def test_delete_cancels_the_queued_reconstructions(api, settings, photos):
    await _register(settings)
    services = api.app.state.services
    record = await _store_image(services, photos["other_png"].read_bytes())
    jobs = [(await api.get(f"/v1/images/{record.id}/full", params={"format": fmt})).json() for fmt in ("png", "webp")]
    assert [j["status"] for j in jobs] == ["queued", "queued"]
    assert (await api.delete(f"/v1/images/{record.id}")).status_code == 204
    assert [(await api.get(f"/v1/jobs/{j['id']}")).json()["status"] for j in jobs] == ["cancelled", "cancelled"]
    assert not services.storage.exists(record.thumbnail_key)


async def test_an_image_still_being_made_can_be_deleted(api, settings, photos):
    await _register(settings)
    upload = await api.post("/v1/images", files={"file": ("a.png", photos["small_png"].read_bytes())})
    assert upload.status_code == 202  # no worker runs: the downscale waits in the queue
    job = upload.json()
    original = api.app.state.services.storage.list("originals/")
    assert len(original) == 1
    assert (await api.delete(f"/v1/images/{job['image_id']}")).status_code == 204
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
    assert api.app.state.services.storage.list("originals/") == []
    assert (await api.delete(f"/v1/images/{job['image_id']}")).status_code == 404


async def test_a_delete_racing_the_worker_leaves_nothing_servable(api, settings, photos):
    """The worker is past its last cancellation check when the image is deleted: the delete lands just before
    the result is stored (a spy on the cache's put runs the delete, then the real put), and the worker must take
    the result back when it reports success and finds the job cancelled."""
    from model import TADMPipeline
    from service.worker.process import Worker

    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    settings = settings.model_copy(update={"tile_size": 8, "tile_stride": 8, "tile_batch_size": 16})
    services = build_services(settings)
    worker = Worker(settings, pipe, ModelInfo(pipe.model_id, "tiny", 16, False), services)
    try:
        await worker.queue.ensure_groups(worker.streams)
        await worker.registry.heartbeat(WorkerInfo(worker.name, worker.model, time.time()), 60)
        with Image.open(photos["small_png"]) as img:
            record = await _store_image(services, pipe.downscale(img).to_png(), model_id=pipe.model_id)
        job = (await api.get(f"/v1/images/{record.id}/full")).json()
        key = reconstruction_key(pipe.model_id, record.thumbnail_sha, "png")

        real_put, deleted = services.cache.put, []

        async def delete_then_put(put_key, data):  # a spy: the user's DELETE, then the real put
            deleted.append((await api.delete(f"/v1/images/{record.id}")).status_code)
            return await real_put(put_key, data)

        services.cache.put = delete_then_put  # type: ignore[method-assign]
        entries = await worker.queue.read(worker.name, worker.streams, count=4, block_ms=100)
        await worker.process(entries)
        assert deleted == [204]
        assert (await api.get(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
        assert not services.storage.exists(key)  # taken back by the worker
        result = await api.get(f"/v1/reconstructions/{pipe.model_id}/{record.thumbnail_sha}.png")
        assert result.status_code == 404
        assert await services.cache.total_bytes() == 0
    finally:
        await services.close()


async def test_posted_thumbnails_are_swept_after_their_retention(settings, photos):
    services = build_services(settings.model_copy(update={"posted_thumbnail_retention_seconds": 3600}))
    try:
        old, fresh = "inputs/" + "aa" * 32 + ".png", "inputs/" + "bb" * 32 + ".png"
        await services.posted.store(old, b"old thumbnail")
        await services.posted.store(fresh, b"fresh thumbnail")
        # Two hours on, only the one posted again an hour ago is still within its hour.
        now = time.time()
        await services.redis.zadd(services.keys.posted_thumbnails, {old: now - 7200, fresh: now - 600})
        assert await services.posted.sweep(now=now) == [old]
        assert not services.storage.exists(old) and services.storage.exists(fresh)
        assert await services.posted.sweep(now=now + 3600) == [fresh]
        assert services.storage.list("inputs/") == []
    finally:
        await services.close()


async def test_the_worker_loop_sweeps_posted_thumbnails(settings):
    from model import TADMPipeline
    from service.worker.process import Worker

    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)  # no job reaches it: the sweep is the test
    services = build_services(settings)
    worker = Worker(settings, pipe=pipe, model=ModelInfo(MODEL_ID, "tiny", 16, False), services=services)
    try:
        await worker.queue.ensure_groups(worker.streams)
        key = "inputs/" + "cc" * 32 + ".png"
        await services.posted.store(key, b"a thumbnail posted two days ago")
        await services.redis.zadd(services.keys.posted_thumbnails, {key: time.time() - 2 * 86400})
        await asyncio.wait_for(worker._step(), 30)
        assert not services.storage.exists(key)
    finally:
        await services.close()
