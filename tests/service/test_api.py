"""The API in-process (httpx ASGI transport, real Redis and storage): auth, signed URLs, caching headers,
problem responses, readiness without workers. No worker runs here; records and registrations are written
the way a worker writes them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis.asyncio import Redis

from service.api.app import create_app
from service.queue.registry import ModelInfo, Registry, WorkerInfo
from service.redis_keys import RedisKeys
from service.storage import sha256_hex, thumbnail_key
from service.storage.local import LocalStorage
from service.storage.records import ImageRecord, ImageRecords

pytestmark = pytest.mark.anyio


async def _store_image(settings, png: bytes) -> ImageRecord:
    """An image as a worker leaves it: the thumbnail in storage and the record in Redis."""
    sha = sha256_hex(png)
    LocalStorage(settings.storage_dir).put(thumbnail_key(sha), png)
    record = ImageRecord(id="ab" * 10, width=256, height=192, scale=16, model_id="abcdef0123456789",
                         thumbnail_key=thumbnail_key(sha), thumbnail_sha=sha, original_bytes=90000,
                         thumbnail_bytes=len(png), created_at=time.time())
    redis = Redis.from_url(settings.redis_url)
    try:
        await ImageRecords(redis, RedisKeys(settings.key_prefix)).save(record)
    finally:
        await redis.aclose()
    return record


async def test_health_and_readiness_without_workers(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["redis"] is True and ready.json()["workers"] == 0
    assert (await api.get("/v1/info")).json() == {"workers": 0, "models": [], "warning": None, "notice": None}


async def test_upload_without_a_worker_is_not_ready(api, photos):
    r = await api.post("/v1/images", files={"file": ("a.png", photos["small_png"].read_bytes())})
    assert r.status_code == 503 and r.json()["type"] == "urn:tadm:problem:not-ready"
    assert r.headers["retry-after"] == "3"


async def test_upload_at_a_scale_no_worker_serves(api, settings, photos):
    redis = Redis.from_url(settings.redis_url)
    try:
        info = WorkerInfo("w", ModelInfo("abcdef0123456789", "tiny", 16, False), time.time())
        await Registry(redis, RedisKeys(settings.key_prefix)).heartbeat(info, 30)
    finally:
        await redis.aclose()
    r = await api.post("/v1/images", params={"scale": 32},
                       files={"file": ("a.png", photos["small_png"].read_bytes())})
    assert r.status_code == 422 and "scale 32" in r.json()["detail"]
    ready = (await api.get("/readyz")).json()
    assert ready["status"] == "ready" and "RANDOM weights" in ready["warning"]


async def test_a_preview_model_is_labelled_with_what_it_measured(api, settings):
    quality = {"evaluation_set": "kodak", "images": 24, "psnr_y": 23.4, "bicubic_psnr_y": 23.01,
               "ms_ssim_y": 0.75, "bicubic_ms_ssim_y": 0.72, "release_psnr_y": 24.51, "preview": True,
               "summary": "preview model: 23.40 dB PSNR-Y on kodak (24 photos) against bicubic's 23.01 dB"}
    redis = Redis.from_url(settings.redis_url)
    try:
        info = WorkerInfo("w", ModelInfo("abcdef0123456789", "nano", 16, True, quality), time.time())
        await Registry(redis, RedisKeys(settings.key_prefix)).heartbeat(info, 30)
    finally:
        await redis.aclose()
    ready = (await api.get("/readyz")).json()
    assert ready["warning"] is None  # a trained model: no untrained-model warning
    assert ready["notice"] == f"{quality['summary']} (model abcdef0123456789, 16x)"
    body = (await api.get("/v1/info")).json()
    assert body["notice"] == ready["notice"] and body["models"][0]["quality"] == quality
    assert body["models"][0]["plain_rule_psnr_y"] is None


async def test_info_names_a_models_plain_rule_and_a_newer_workers_fields_are_ignored(api, settings):
    redis = Redis.from_url(settings.redis_url)
    try:
        info = WorkerInfo("w", ModelInfo("abcdef0123456789", "nano", 16, True, None, 41.25), time.time())
        await Registry(redis, RedisKeys(settings.key_prefix)).heartbeat(info, 30)
        # a worker of a later version registers a field this API does not know: its model is still listed
        keys = RedisKeys(settings.key_prefix)
        raw = json.loads(await redis.get(keys.worker("w")))
        raw["name"], raw["model"]["model_id"], raw["model"]["a_later_field"] = "w2", "0123456789abcdef", 1
        await redis.set(keys.worker("w2"), json.dumps(raw), px=30_000)
        await redis.sadd(keys.workers, "w2")
    finally:
        await redis.aclose()
    models = {m["model_id"]: m for m in (await api.get("/v1/info")).json()["models"]}
    assert models["abcdef0123456789"]["plain_rule_psnr_y"] == 41.25
    assert models["0123456789abcdef"]["plain_rule_psnr_y"] == 41.25 and "a_later_field" not in models["0123456789abcdef"]


async def test_problem_responses_for_unknown_things(api):
    for path in ("/v1/images/nope", "/v1/jobs/0123456789abcdef01234567", "/no-such-page.txt",
                 "/v1/reconstructions/abcdef0123456789/" + "ab" * 32 + ".png"):
        r = await api.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:tadm:problem:not-found" and r.json()["instance"] == path
    bad = await api.get("/v1/images", params={"limit": "many"})
    assert bad.status_code == 422 and bad.json()["type"] == "urn:tadm:problem:invalid-request"
    full = "/v1/images/" + "ab" * 10 + "/full"  # its query is parsed by hand (hot route): the same problems
    for params, named in (({"format": "gif"}, "query.format"), ({"w": "wide"}, "query.w"), ({"w": "0"}, "query.w"),
                          ({"priority": "urgent"}, "query.priority")):
        r = await api.get(full, params=params)
        assert r.status_code == 422 and r.json()["type"] == "urn:tadm:problem:invalid-request", params
        assert r.json()["detail"].startswith(named), r.json()
    documented = (await api.get("/openapi.json")).json()["paths"]["/v1/images/{image_id}/full"]["get"]["parameters"]
    assert {p["name"]: p["in"] for p in documented} == {"image_id": "path", "format": "query", "w": "query",
                                                        "priority": "query"}


async def test_web_page_is_served(api):
    page = await api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


async def test_thumbnail_etag_and_304(api, settings, photos):
    from PIL import Image

    from service.media import encode_image

    with Image.open(photos["small_png"]) as img:
        png = encode_image(img.convert("RGB").resize((16, 12)), "png")
    record = await _store_image(settings, png)
    r = await api.get(f"/v1/images/{record.id}/thumbnail")
    assert r.status_code == 200 and r.content == png
    assert r.headers["etag"] == f'"{record.thumbnail_sha[:32]}"'
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    not_modified = await api.get(f"/v1/images/{record.id}/thumbnail", headers={"If-None-Match": r.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    listed = (await api.get("/v1/images")).json()["items"]
    assert [i["id"] for i in listed] == [record.id]
    assert listed[0]["saving"] == pytest.approx(1 - len(png) / 90000, abs=1e-5)


@pytest.fixture
async def keyed_api(settings):
    keyed = settings.model_copy(update={"api_keys": "k1,k2", "signing_key": "s3cret"})
    app = create_app(keyed)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client


async def test_api_keys_guard_writes(keyed_api, photos):
    body = {"file": ("a.png", photos["small_png"].read_bytes())}
    missing = await keyed_api.post("/v1/images", files=body)
    assert missing.status_code == 401 and missing.json()["type"] == "urn:tadm:problem:unauthorized"
    wrong = await keyed_api.post("/v1/images", files=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["type"] == "urn:tadm:problem:forbidden"
    right = await keyed_api.post("/v1/images", files=body, headers={"X-API-Key": "k2"})
    assert right.status_code == 503  # past auth: no worker in this test
    assert (await keyed_api.get("/healthz")).status_code == 200  # health needs no key


async def test_signed_urls_let_a_browser_read_without_the_key(keyed_api, settings, photos):
    record = await _store_image(settings, photos["other_png"].read_bytes())
    image = (await keyed_api.get(f"/v1/images/{record.id}", headers={"Authorization": "Bearer k1"})).json()
    url = urlsplit(image["thumbnail_url"])
    query = parse_qs(url.query)
    assert url.path == f"/v1/images/{record.id}/thumbnail" and int(query["expires"][0]) > time.time()
    assert (await keyed_api.get(image["thumbnail_url"])).status_code == 200
    assert (await keyed_api.get(url.path)).status_code == 401
    tampered = image["thumbnail_url"].replace(query["sig"][0], "0" * 64)
    assert (await keyed_api.get(tampered)).status_code == 403
    other_path = f"/v1/images/{record.id}/full?{url.query}"  # a signature is valid for its own path only
    assert (await keyed_api.get(other_path)).status_code == 403
    expired = f"{url.path}?expires=1000&sig=" + query["sig"][0]
    assert (await keyed_api.get(expired)).json()["type"] == "urn:tadm:problem:forbidden"


def test_keys_without_a_signing_key_are_refused(settings):
    with pytest.raises(ValueError, match="TADM_SIGNING_KEY"):
        create_app(settings.model_copy(update={"api_keys": "k1"}))


def test_importing_the_api_does_not_import_torch():
    code = ("import sys, service.api.app, service.queue.job_queue, service.queue.registry, service.wiring, "
            "service.client; assert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_every_setting_is_documented():
    from service.config import Settings

    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


async def test_unreachable_redis_is_503_not_ready(settings):
    from service.dev.embedded_redis import free_port

    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(down)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            listing = await client.get("/v1/images")
            assert listing.status_code == 503 and listing.json()["type"] == "urn:tadm:problem:not-ready"
            assert listing.headers["retry-after"] == "5"
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["redis"] is False
            assert (await client.get("/healthz")).status_code == 200


async def test_readiness_counts_only_heartbeats_renewed_since_the_api_started(settings, photos):
    # A heartbeat written before the API started: restored from the AOF, or left by a worker that died since.
    redis = Redis.from_url(settings.redis_url)
    registry = Registry(redis, RedisKeys(settings.key_prefix))
    info = WorkerInfo("w", ModelInfo("abcdef0123456789", "tiny", 16, False), time.time())
    try:
        await registry.heartbeat(info, 30)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                stale = await client.get("/readyz")
                assert stale.status_code == 503 and stale.json()["workers"] == 0
                assert (await client.get("/v1/info")).json()["workers"] == 0
                assert "tadm_live_workers 0.0" in (await client.get("/metrics")).text  # the three agree
                # Uploads agree with /readyz: refused, not queued for a worker that may be gone.
                upload = await client.post("/v1/images", files={"file": ("a.png", photos["small_png"].read_bytes())})
                assert upload.status_code == 503 and upload.json()["type"] == "urn:tadm:problem:not-ready"
                await registry.heartbeat(info, 30)  # the worker renews it: it is live now
                fresh = await client.get("/readyz")
                assert fresh.status_code == 200 and fresh.json()["workers"] == 1
                assert "tadm_live_workers 1.0" in (await client.get("/metrics")).text
    finally:
        await redis.aclose()
