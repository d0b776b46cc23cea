"""Thumbnails stored as TADM_THUMBNAIL_FORMAT and served in the format ``Accept`` names: a real in-process worker
stores them (the record counts the bytes stored), the API converts them per representation with its own ETag
and 304s, and a thumbnail fetched in any format and posted back finds the image's cached reconstruction."""

from __future__ import annotations

import io
import json

import pytest

from model.thumbnail import Thumbnail
from model.thumbnail_formats import exif_block, jxl_available
from service.api.http_caching import negotiated_thumbnail_format
from service.storage import reconstruction_key, thumbnail_key_format
from tests.service.test_verified_ingest import Run

pytestmark = pytest.mark.anyio
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
needs_jxl = pytest.mark.skipif(not jxl_available(), reason="pillow-jxl-plugin is not installed")


@pytest.fixture(scope="module")
def tiny16():
    from model import TADMPipeline

    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


@pytest.mark.parametrize("accept, expected", [
    (None, "png"), ("*/*", "png"), ("image/*", "png"),  # a client that names no format gets PNG, as it always did
    (CHROME, "webp"), (FIREFOX, "webp"), (SAFARI, "jxl"),
    ("image/jxl;q=0.5, image/png", "png"), ("image/webp;q=0, */*", "png"), ("image/png;q=0, image/webp", "webp"),
    ("text/html", "png"),  # nothing acceptable: PNG rather than 406
])
def test_the_thumbnail_format_is_webp_or_jxl_only_when_accept_names_it(accept, expected):
    assert negotiated_thumbnail_format(accept) == expected


def test_jpeg_xl_is_offered_only_where_it_can_be_written():
    assert negotiated_thumbnail_format(SAFARI, jxl=False) == "webp"


@pytest.fixture
async def stored_image(tiny16, settings, photos, api):
    """An image uploaded through the API and stored by a real worker in-process; (run, record)."""
    run = Run(settings, tiny16)
    await run.register()
    try:
        r = await api.post("/v1/images", content=photos["small_png"].read_bytes(),
                           headers={"Content-Type": "image/png"})
        assert r.status_code == 202, r.text
        assert await run.step() == 1
        job = await run.services.queue.get(r.json()["id"])
        assert job.status == "succeeded", job.error
        yield run, await run.services.records.get(job.params.image_id)
    finally:
        await run.close()


async def test_the_worker_stores_the_configured_format_and_counts_its_bytes(stored_image, settings, api):
    run, record = stored_image
    stored = run.services.storage.get(record.thumbnail_key)
    assert thumbnail_key_format(record.thumbnail_key) == settings.stored_thumbnail_format
    assert record.thumbnail_bytes == len(stored) and Thumbnail.from_bytes(stored).metadata["w"] == 256
    stats = (await api.get("/v1/stats")).json()
    assert stats["stored_bytes"] == len(stored)


async def test_each_representation_has_its_own_etag_and_304(stored_image, api):
    run, record = stored_image
    url = f"/v1/images/{record.id}/thumbnail"
    stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
    cases = [({}, "png"), ({"Accept": CHROME}, "webp"), ({"Accept": "*/*"}, "png")]
    if jxl_available():
        cases.append(({"Accept": SAFARI}, "jxl"))
    etags = {}
    for headers, fmt in cases:
        r = await api.get(url, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == f"image/{fmt}"
        assert r.headers["vary"] == "Accept" and "immutable" in r.headers["cache-control"]
        back = Thumbnail.from_bytes(r.content)
        assert back.image.tobytes() == stored.image.tobytes() and back.metadata == stored.metadata
        etags.setdefault(fmt, r.headers["etag"])
        assert r.headers["etag"] == etags[fmt]  # the same representation, the same strong tag
        again = await api.get(url, headers={**headers, "If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.headers["etag"] == r.headers["etag"]
        assert again.headers["vary"] == "Accept"
    assert len(set(etags.values())) == len(etags)  # another format, another tag
    stored_format = thumbnail_key_format(record.thumbnail_key)
    if stored_format in etags:  # the stored bytes keep the tag they always had: their hash
        assert etags[stored_format] == f'"{record.thumbnail_sha[:32]}"'
    # Another representation's tag does not revalidate this one.
    other = await api.get(url, headers={"Accept": CHROME, "If-None-Match": etags["png"]})
    assert other.status_code == 200 and other.headers["content-type"] == "image/webp"
    # The API process keeps each conversion in memory under the stored key and its format.
    if stored_format != "png":
        assert api.app.state.services.memory.get(f"{record.thumbnail_key} as png") is not None


async def test_format_forces_one_without_vary(stored_image, api):
    _, record = stored_image
    r = await api.get(f"/v1/images/{record.id}/thumbnail", params={"format": "webp"}, headers={"Accept": "image/png"})
    assert r.headers["content-type"] == "image/webp" and "vary" not in r.headers
    bad = await api.get(f"/v1/images/{record.id}/thumbnail", params={"format": "gif"})
    assert bad.status_code == 422


@pytest.mark.parametrize("accept", ["image/png", CHROME, pytest.param(SAFARI, marks=needs_jxl)])
async def test_a_fetched_thumbnail_posted_back_finds_the_cached_reconstruction(stored_image, api, accept):
    run, record = stored_image
    cached = run.services.storage.get(reconstruction_key(record.model_id, record.thumbnail_sha, "png"))
    assert cached is not None  # the verifying reconstruction, cached by the ingest
    thumbnail = (await api.get(f"/v1/images/{record.id}/thumbnail", headers={"Accept": accept})).content
    r = await api.post("/v1/reconstructions", params={"format": "png"}, content=thumbnail)
    assert r.status_code == 200, r.text  # no job: the image's own cached reconstruction
    assert r.content == cached


async def test_a_lossy_or_foreign_thumbnail_is_refused(stored_image, api):
    run, record = stored_image
    stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
    buf = io.BytesIO()
    stored.image.save(buf, format="WEBP", quality=90)  # lossy: VP8
    r = await api.post("/v1/reconstructions", content=buf.getvalue(), params={"scale": 16, "width": 256,
                                                                               "height": 192})
    assert r.status_code == 415 and "lossy formats destroy what the rescaler hid" in r.json()["detail"]
    if jxl_available():
        # A JPEG XL the service did not write (other encoder settings) cannot be shown lossless: refused.
        buf = io.BytesIO()
        metadata = exif_block(json.dumps(stored.metadata, separators=(",", ":")))
        stored.image.save(buf, format="JXL", lossless=True, effort=3, exif=b"\0\0\0\0" + metadata)
        r = await api.post("/v1/reconstructions", content=buf.getvalue())
        assert r.status_code == 415 and "only as this service wrote it" in r.json()["detail"]
