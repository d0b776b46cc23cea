"""What a CDN in front of the origin relies on, in-process on real Redis and storage (no worker: reconstructions
are stored in the cache the way a worker stores them): HEAD wherever GET is, weak If-None-Match, byte ranges,
the format chosen from Accept with ``Vary: Accept``, and ``?w=`` variants cached under their own keys."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from service.media import encode_image
from service.queue.registry import ModelInfo, WorkerInfo
from service.storage import reconstruction_key, sha256_hex, thumbnail_key, variant_key
from service.storage.records import ImageRecord

pytestmark = pytest.mark.anyio
MODEL_ID = "abcdef0123456789"
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI = ("image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,"
          "image/*;q=0.8,*/*;q=0.5")
ACCEPT_CASES = [
    (None, "png"),  # no header: the lossless default
    ("*/*", "png"),  # curl, httpx
    (CHROME, "webp"),  # named beats admitted by image/*
    ("image/avif,image/webp,*/*", "webp"),  # Firefox
    (SAFARI, "png"),  # both named at q=1: PNG first
    ("image/webp;q=0.5, image/png;q=0.9", "png"),
    ("image/png;q=0, image/*", "webp"),  # PNG refused explicitly
    ("image/jpeg", "jpeg"),
    ("image/gif", "png"),  # nothing we make: the header is disregarded
]


@pytest.fixture
async def stored(api, photos):
    """An image with its thumbnail stored and its reconstructions cached in PNG and WebP (what workers leave)."""
    services = api.app.state.services
    await services.registry.heartbeat(WorkerInfo("w", ModelInfo(MODEL_ID, "tiny", 16, False), time.time()), 60)
    with Image.open(photos["full_png"]) as img:  # 768x512: the "reconstruction"
        full = img.convert("RGB")
        thumb = encode_image(full.resize((48, 32)), "png")
        sha = sha256_hex(thumb)
        services.storage.put(thumbnail_key(sha), thumb)
        record = ImageRecord(id="ef" * 10, width=768, height=512, scale=16, model_id=MODEL_ID,
                             thumbnail_key=thumbnail_key(sha), thumbnail_sha=sha, original_bytes=600000,
                             thumbnail_bytes=len(thumb), created_at=time.time())
        await services.records.save(record)
        results = {fmt: encode_image(full, fmt) for fmt in ("png", "webp")}
    for fmt, data in results.items():
        await services.cache.put(reconstruction_key(MODEL_ID, sha, fmt), data)
    return record, thumb, results


async def test_head_answers_wherever_get_does(api, stored):
    record, thumb, results = stored
    for path in (f"/v1/images/{record.id}/thumbnail", f"/v1/images/{record.id}/full?format=png", "/",
                 f"/v1/images/{record.id}", "/v1/images", "/healthz", "/readyz", "/v1/info", "/app.js",
                 f"/v1/reconstructions/{MODEL_ID}/{record.thumbnail_sha}.webp"):
        get, head = await api.get(path), await api.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-length"] == str(len(get.content)), path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.headers.get("etag") == get.headers.get("etag"), path
    missing = await api.head("/v1/images/" + "00" * 10 + "/thumbnail")
    assert missing.status_code == 404 and missing.content == b""
    schema_paths = (await api.get("/openapi.json")).json()["paths"]
    assert "head" not in schema_paths["/v1/images/{image_id}/thumbnail"]  # GET's operation, documented once


async def test_weak_if_none_match_revalidates(api, stored):
    record, _, _ = stored
    etag = (await api.get(f"/v1/images/{record.id}/thumbnail")).headers["etag"]
    assert etag.startswith('"')
    for header in (etag, f"W/{etag}", f'"other", W/{etag}', "*"):
        r = await api.get(f"/v1/images/{record.id}/thumbnail", headers={"If-None-Match": header})
        assert r.status_code == 304 and r.headers["etag"] == etag, header
    assert (await api.get(f"/v1/images/{record.id}/thumbnail", headers={"If-None-Match": 'W/"other"'})).status_code == 200


async def test_byte_ranges_of_stored_files(api, stored):
    record, thumb, results = stored
    url = f"/v1/images/{record.id}/thumbnail"
    size = len(thumb)
    whole = await api.get(url)
    assert whole.headers["accept-ranges"] == "bytes"
    for spec, (start, end) in (("bytes=0-99", (0, 99)), ("bytes=100-", (100, size - 1)),
                               (f"bytes=-{size // 2}", (size - size // 2, size - 1)),
                               (f"bytes=10-{size * 2}", (10, size - 1))):
        part = await api.get(url, headers={"Range": spec})
        assert part.status_code == 206, spec
        assert part.content == thumb[start:end + 1], spec
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}", spec
    past = await api.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert past.json()["type"] == "urn:tadm:problem:range-not-satisfiable"
    # Several ranges, or an If-Range naming another version: the whole file (RFC 9110 allows it).
    assert (await api.get(url, headers={"Range": "bytes=0-1,5-6"})).content == thumb
    stale = await api.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == thumb
    same = await api.get(url, headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]})
    assert same.status_code == 206 and same.content == thumb[:10]
    full = await api.get(f"/v1/images/{record.id}/full?format=webp", headers={"Range": "bytes=0-11"})
    assert full.status_code == 206 and full.content == results["webp"][:12]


@pytest.mark.parametrize(("accept", "fmt"), ACCEPT_CASES)
async def test_the_format_follows_accept_and_varies_on_it(api, stored, accept, fmt):
    record, _, results = stored
    r = await api.get(f"/v1/images/{record.id}/full", headers={"Accept": accept} if accept else {})
    assert r.headers["vary"] == "Accept"
    if fmt == "jpeg":  # not cached: its job is queued, and the 202 varies on Accept too
        assert r.status_code == 202 and r.json()["status"] == "queued"
        return
    assert r.status_code == 200 and r.content == results[fmt]
    assert r.headers["content-type"] == f"image/{fmt}"


async def test_an_explicit_format_does_not_vary(api, stored):
    record, _, results = stored
    r = await api.get(f"/v1/images/{record.id}/full", params={"format": "png"}, headers={"Accept": "image/webp"})
    assert r.content == results["png"] and "vary" not in r.headers


async def test_a_201_upload_says_where_the_image_is(api, stored, photos):
    services = api.app.state.services
    record, _, _ = stored
    # A duplicate upload answers 201 at once with the stored image (no worker needed for that).
    from service.storage.records import image_id_for

    data = photos["small_png"].read_bytes()
    duplicate = ImageRecord(**{**vars(record), "id": image_id_for(sha256_hex(data), MODEL_ID, 16)})
    await services.records.save(duplicate)
    r = await api.post("/v1/images", files={"file": ("a.png", data)})
    assert r.status_code == 201 and r.headers["location"] == f"/v1/images/{duplicate.id}"
    assert (await api.get(r.headers["location"])).json()["id"] == duplicate.id


async def test_width_variants_are_derived_once_and_cached_under_their_own_key(api, stored):
    record, _, results = stored
    services = api.app.state.services
    r = await api.get(f"/v1/images/{record.id}/full", params={"format": "webp", "w": 320})
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(r.content)).size == (320, 213)
    key = variant_key(MODEL_ID, record.thumbnail_sha, 320, "webp")
    assert services.storage.get(key) == r.content  # its own cache entry, inside the cache's budget
    assert await services.cache.total_bytes() == sum(map(len, results.values())) + len(r.content)
    again = await api.get(f"/v1/reconstructions/{MODEL_ID}/{record.thumbnail_sha}.webp", params={"w": 320})
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]
    wide = await api.get(f"/v1/images/{record.id}/full", params={"format": "png", "w": 1280})
    assert wide.content == results["png"]  # never enlarged: the reconstruction itself
    odd = await api.get(f"/v1/images/{record.id}/full", params={"w": 333})
    assert odd.status_code == 422 and "320" in odd.json()["detail"]
    # Deleting the image removes its variants with its reconstructions.
    assert (await api.delete(f"/v1/images/{record.id}")).status_code == 204
    assert services.storage.list("variants/") == [] and services.storage.list("reconstructions/") == []
    assert await services.cache.total_bytes() == 0


async def test_a_replica_never_serves_from_memory_what_another_deleted(api, stored, settings):
    """Two API processes on one Redis and storage: what one keeps in memory, the other's delete still removes."""
    from service.api.app import create_app

    record, _, results = stored
    result_url = f"/v1/reconstructions/{MODEL_ID}/{record.thumbnail_sha}.webp"
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        import httpx

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://b") as replica:
            assert (await replica.get(result_url)).content == results["webp"]
            assert (await replica.get(f"/v1/images/{record.id}/thumbnail")).status_code == 200
            memory = other.state.services.memory
            assert len(memory) == 2  # the thumbnail and the reconstruction, kept by this replica
            assert (await api.delete(f"/v1/images/{record.id}")).status_code == 204  # on the first process
            assert (await replica.get(result_url)).status_code == 404
            assert (await replica.get(f"/v1/images/{record.id}/thumbnail")).status_code == 404


def test_memory_keeps_recent_bytes_within_its_budget():
    from service.storage.memory import BytesLRU

    memory = BytesLRU(400)
    for key in "abcd":
        memory.put(key, key.encode() * 100)
    memory.get("a")  # a is now the most recently used
    memory.put("e", b"e" * 100)
    assert memory.size == 400 and [k for k in "abcde" if memory.get(k)] == ["a", "c", "d", "e"]
    memory.put("big", b"x" * 101)  # over a quarter of the budget: not kept
    assert memory.get("big") is None and len(memory) == 4


async def test_a_reconstruction_served_from_memory_stays_recently_used(api, stored):
    import asyncio

    record, _, results = stored
    cache = api.app.state.services.cache
    key = reconstruction_key(MODEL_ID, record.thumbnail_sha, "webp")
    url = f"/v1/images/{record.id}/full?format=webp"
    assert (await api.get(url)).content == results["webp"]  # read from storage, kept in memory
    await cache.redis.zadd(cache.keys.recon_lru, {key: 1.0})  # as if unused since 1970
    cache._touched.clear()
    assert (await api.get(url)).content == results["webp"]  # from memory: the record proved the image exists
    await asyncio.gather(*cache._touches)
    assert await cache.redis.zscore(cache.keys.recon_lru, key) > time.time() - 60  # touched in the background
