"""Redis Cluster: every script names its keys, keys used together share a slot, and the whole service (API
and worker in-process, with the real tiny pipeline) runs on a real three-node cluster, where a script, a
transaction or a multi-key command over two slots fails. The end-to-end flow and the kill -9 reclaim through
real processes run on the cluster in test_e2e_a_flow.py and test_e2e_b_faults.py."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from redis.crc import key_slot

from service.config import Settings
from service.queue.registry import ModelInfo, WorkerInfo
from service.redis_keys import RedisKeys
from service.storage import reconstruction_key
from service.wiring import build_services

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
REDIS_CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*,\s*([^,)]+)")


def _lua_calls() -> list[tuple[str, str, str]]:
    """(file, command, first argument) of every ``redis.call`` in the service's Lua scripts."""
    calls = []
    for path in sorted((REPO / "service").rglob("*.py")):
        for command, key in REDIS_CALL.findall(path.read_text()):
            calls.append((str(path.relative_to(REPO)), command, key.strip()))
    return calls


def test_every_lua_script_names_the_keys_it_touches():
    calls = _lua_calls()
    assert len(calls) >= 15  # the scripts of the queue and of posted thumbnails were found
    computed = [call for call in calls if not call[2].startswith("KEYS[")]
    assert computed == [], "a key built inside a script: a cluster cannot route it (declare it in KEYS)"


def test_single_redis_key_names_are_unchanged():
    keys = RedisKeys("tadm")
    names = [keys.stream("m", "interactive"), keys.job("j"), keys.dead_letter, keys.image("i"),
             keys.upload_job("i"), keys.images, keys.thumbnail_refs("s"), keys.posted_thumbnails,
             keys.worker("w"), keys.workers, keys.models, keys.recon_lru, keys.recon_sizes, keys.recon_bytes,
             keys.job_events("j")]
    assert names == ["tadm:jobs:m:interactive", "tadm:job:j", "tadm:dead", "tadm:image:i", "tadm:upload:i",
                     "tadm:images", "tadm:thumbrefs:s", "tadm:posted", "tadm:worker:w", "tadm:workers",
                     "tadm:models", "tadm:recon:lru", "tadm:recon:sizes", "tadm:recon:bytes", "tadm:events:j"]
    assert keys.delayed("m", "background") == "tadm:delayed:m:background"  # new: one retry set per stream


def test_keys_used_together_share_a_slot_on_a_cluster():
    keys = RedisKeys("tadm", cluster=True)
    groups = {
        "queue": [keys.stream("m", "interactive"), keys.stream("m", "background"), keys.job("j1"),
                  keys.job("j2"), keys.delayed("m", "interactive"), keys.delayed("m", "background"),
                  keys.dead_letter],
        "registry": [keys.worker("w1"), keys.worker("w2"), keys.workers, keys.models],
        "recon": [keys.recon_lru, keys.recon_sizes, keys.recon_bytes],
        "image 1": [keys.image("a" * 20), keys.upload_job("a" * 20)],
        "image 2": [keys.image("b" * 20), keys.upload_job("b" * 20)],
    }
    slots = {}
    for group, names in groups.items():
        assert len({key_slot(name.encode()) for name in names}) == 1, (group, names)
        slots[group] = key_slot(names[0].encode())
    assert len(set(slots.values())) == len(slots)  # the groups (and images) spread over the cluster
    assert keys.job("j1") == "{tadm:queue}:job:j1" and keys.image("i") == "tadm:image:{i}"


@contextlib.asynccontextmanager
async def _api(settings: Settings):
    """The API in-process, lifespan included."""
    import httpx

    from service.api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client


@pytest.fixture
def cluster_settings(redis_cluster, settings) -> Settings:
    return settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True, "tile_size": 8,
                                       "tile_stride": 8, "tile_batch_size": 16,
                                       "posted_thumbnail_retention_seconds": 60})


async def test_the_service_runs_on_a_cluster(cluster_settings, photos):
    """Upload, listing, thumbnail, reconstruction, width variant, a posted thumbnail and its sweep, readiness,
    metrics and delete: every Redis operation of the API and the worker, on a cluster's three nodes."""
    from model import TADMPipeline
    from service.worker.process import Worker

    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    services = build_services(cluster_settings)
    worker = Worker(cluster_settings, pipe, ModelInfo(pipe.model_id, "tiny", 16, False), services)

    async def work() -> None:  # one pass of the worker over what is queued
        entries = await worker.queue.read(worker.name, worker.streams, count=4, block_ms=100)
        assert entries
        await worker.process(entries)

    async def listed(api) -> list[str]:
        return [item["id"] for item in (await api.get("/v1/images")).json()["items"]]

    try:
        await worker.queue.ensure_groups(worker.streams)
        async with _api(cluster_settings) as api:
            assert (await api.get("/readyz")).json()["status"] == "not-ready"
            # A heartbeat renewed since the API started, by the clock of the node that holds the registry
            await worker.registry.heartbeat(WorkerInfo(worker.name, worker.model, time.time()), 60)
            assert (await api.get("/readyz")).json()["status"] == "ready"
            jobs = [(await api.post("/v1/images", files={"file": ("a.png", photos[n].read_bytes())})).json()
                    for n in ("small_png", "other_png")]
            await work()
            image, other = [(await api.get(f"/v1/images/{job['image_id']}")).json() for job in jobs]
            # two records in two slots: the listing reads them without MGET
            slots = {key_slot(services.keys.image(i["id"]).encode()) for i in (image, other)}
            assert len(slots) == 2 and await listed(api) == [other["id"], image["id"]]
            thumbnail = (await api.get(image["thumbnail_url"])).content
            other_sha = (await services.records.get(other["id"])).thumbnail_sha
            # the verifying reconstruction is the first /full (PNG, WebP); another format is made by a job
            assert (await api.get(image["full_url"], params={"format": "jpeg"})).status_code == 202
            await work()
            assert (await api.get(image["full_url"], params={"format": "jpeg"})).status_code == 200
            full = await api.get(image["full_url"])
            assert full.status_code == 200 and Image.open(io.BytesIO(full.content)).size == (256, 192)
            assert (await api.get(image["full_url"], params={"w": 160})).status_code == 200
            posted = await api.post("/v1/reconstructions", files={"file": ("t.png", thumbnail)})
            assert posted.status_code == 200 and posted.content == full.content  # the cached reconstruction
            assert len(await services.posted.sweep(now=time.time() + 3600)) == 1
            # /metrics scans every node for the streams (and keeps quiet about Redis errors: asked directly)
            assert await services.queue.lengths() == {stream: 0 for stream in worker.streams}
            assert (await api.delete(f"/v1/images/{image['id']}")).status_code == 204
            assert (await api.get(f"/v1/images/{image['id']}")).status_code == 404
            assert await listed(api) == [other["id"]]
            # the reconstructions and the variant went with it; the other image's first /full stays
            kept = [services.storage.get(reconstruction_key(other["model_id"], other_sha, fmt)) for fmt in ("png", "webp")]
            assert await services.cache.total_bytes() == sum(len(data) for data in kept)
    finally:
        await services.close()


def test_the_worker_probe_reads_a_heartbeat_on_a_cluster(cluster_settings):
    import asyncio

    async def beat() -> None:
        services = build_services(cluster_settings)
        try:
            info = WorkerInfo("worker-c", ModelInfo("0123456789abcdef", "tiny", 16, False), time.time())
            await services.registry.heartbeat(info, 60)
        finally:
            await services.close()

    env = {**os.environ, "PYTHONPATH": str(REPO), "TADM_REDIS_URL": cluster_settings.redis_url,
           "TADM_REDIS_CLUSTER": "true", "TADM_KEY_PREFIX": cluster_settings.key_prefix,
           "TADM_WORKER_NAME": "worker-c"}

    def probe() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "docker" / "worker_probe.py")], env=env,
                              capture_output=True, text=True, timeout=60)

    assert probe().returncode == 1
    asyncio.run(beat())
    result = probe()
    assert result.returncode == 0, result.stderr
