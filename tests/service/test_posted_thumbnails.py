"""``POST /v1/reconstructions`` in-process (real Redis and storage, no worker): the size of the image a posted
thumbnail would reconstruct is bounded before anything is queued, and a thumbnail whose metadata a tool stripped
is usable when the client gives scale, size and model as parameters."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from redis.asyncio import Redis

from model.thumbnail import Thumbnail, thumbnail_size
from service.queue.registry import ModelInfo, Registry, WorkerInfo
from service.redis_keys import RedisKeys

pytestmark = pytest.mark.anyio
MODEL_ID = "abcdef0123456789"


@pytest.fixture
async def worker_registered(settings):
    """A live worker's registration, as a worker writes it (no worker runs: jobs stay queued)."""
    redis = Redis.from_url(settings.redis_url)
    try:
        info = WorkerInfo("w", ModelInfo(MODEL_ID, "tiny", 16, False), time.time())
        await Registry(redis, RedisKeys(settings.key_prefix)).heartbeat(info, 60)
    finally:
        await redis.aclose()


def thumbnail_of(path, size=(256, 192), scale=16) -> Thumbnail:
    with Image.open(path) as img:
        small = img.convert("RGB").crop((0, 0, *size)).resize(thumbnail_size(size, scale), Image.Resampling.BICUBIC)
    return Thumbnail(small, scale, size, MODEL_ID)


def stripped(png: bytes) -> bytes:
    """The same pixels re-saved without the `tadm` text chunk (what optimisers with 'strip metadata' do)."""
    with Image.open(io.BytesIO(png)) as img:
        assert "tadm" in img.info
        buf = io.BytesIO()
        img.save(buf, format="PNG")
    return buf.getvalue()


async def _jobs_and_inputs(settings) -> tuple[list, list]:
    redis = Redis.from_url(settings.redis_url)
    try:
        jobs = [key async for key in redis.scan_iter(f"{settings.key_prefix}:job:*")]
    finally:
        await redis.aclose()
    inputs = sorted((settings.storage_dir / "inputs").glob("*")) if (settings.storage_dir / "inputs").exists() else []
    return jobs, inputs


async def test_an_oversized_output_is_refused_before_queueing(api, settings, worker_registered):
    # A 2500x2500 grey thumbnail whose metadata says 40000x40000: 1.6 Gpx to reconstruct.
    bomb = Thumbnail(Image.new("RGB", (2500, 2500), (128, 128, 128)), 16, (40000, 40000), MODEL_ID).to_png()
    r = await api.post("/v1/reconstructions", content=bomb, headers={"Content-Type": "image/png"})
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:tadm:problem:too-many-pixels"
    assert r.json()["width"] == 40000 and r.json()["max_pixels"] == settings.max_image_pixels
    assert await _jobs_and_inputs(settings) == ([], [])  # nothing queued, nothing stored


async def test_a_thumbnail_within_the_limit_is_queued(api, settings, worker_registered, photos):
    thumb = thumbnail_of(photos["small_png"])
    r = await api.post("/v1/reconstructions", content=thumb.to_png(), headers={"Content-Type": "image/png"})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    jobs, inputs = await _jobs_and_inputs(settings)
    # Stored as an image's thumbnail is (TADM_THUMBNAIL_FORMAT), whatever format it was posted in.
    assert len(jobs) == 1 and [p.read_bytes() for p in inputs] == [thumb.to_bytes(settings.stored_thumbnail_format)]


async def test_a_stripped_thumbnail_needs_and_takes_parameters(api, settings, worker_registered, photos):
    thumb = thumbnail_of(photos["small_png"])
    original = thumb.to_png()
    bare = stripped(original)
    post = lambda **params: api.post("/v1/reconstructions", params=params, content=bare,  # noqa: E731
                                     headers={"Content-Type": "image/png"})
    missing = await post()
    assert missing.status_code == 422 and missing.json()["type"] == "urn:tadm:problem:invalid-request"
    assert "`scale`, `width` and `height`" in missing.json()["detail"]
    odd_scale = await post(scale=8, width=256, height=192)
    assert odd_scale.status_code == 422 and "`scale` must be 16 or 32 but is 8" in odd_scale.json()["detail"]
    wrong_size = await post(scale=16, width=300, height=192)  # a 300-wide original has a 19-wide thumbnail
    assert wrong_size.status_code == 422 and "300" in wrong_size.json()["detail"]
    huge = await post(scale=16, width=40000, height=30000)
    assert huge.status_code == 422  # the size does not fit the pixels; never queued either way
    unknown = await post(scale=16, width=256, height=192, model="0" * 16)
    assert unknown.status_code == 409 and unknown.json()["type"] == "urn:tadm:problem:thumbnail-mismatch"
    assert (await _jobs_and_inputs(settings)) == ([], [])

    job = (await post(scale=16, width=256, height=192, model=MODEL_ID)).json()
    assert job["status"] == "queued"
    # The service restored the metadata: the stored input is the original thumbnail, so it is the same job (and
    # later the same cached reconstruction) as posting the unstripped file.
    _, inputs = await _jobs_and_inputs(settings)
    assert [p.read_bytes() for p in inputs] == [thumb.to_bytes(settings.stored_thumbnail_format)]
    same = await api.post("/v1/reconstructions", content=original, headers={"Content-Type": "image/png"})
    assert same.json()["id"] == job["id"]
    # Without `model`, the one known model of that scale is meant.
    assert (await post(scale=16, width=256, height=192)).json()["id"] == job["id"]


async def test_parameters_that_contradict_the_metadata_are_refused(api, worker_registered, photos):
    png = thumbnail_of(photos["small_png"]).to_png()
    r = await api.post("/v1/reconstructions", params={"scale": 32, "width": 256, "height": 192}, content=png,
                       headers={"Content-Type": "image/png"})
    assert r.status_code == 409 and r.json()["type"] == "urn:tadm:problem:thumbnail-mismatch"
    r = await api.post("/v1/reconstructions", params={"model": "0" * 16}, content=png,
                       headers={"Content-Type": "image/png"})
    assert r.status_code == 409
    r = await api.post("/v1/reconstructions", params={"width": 256}, content=png,
                       headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and "`width` and `height`" in r.json()["detail"]
