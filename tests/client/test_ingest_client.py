"""The client's ingest operations against a live `tadm serve --dev`, through both drivers: `find` by SHA-256,
`ingest` (upload unless stored), `stats`, and `upload` with `scale="auto"` and a quality target."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from service.client import AsyncClient, Client
from tests.client.devserver import free_port
from tests.client.test_ingest import write_photo

pytestmark = pytest.mark.slow


def test_ingest_uploads_once_then_finds_the_file(kodak_dir, tmp_path, server_url):
    data = write_photo(kodak_dir, tmp_path / "photo.png", 13).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with Client(server_url) as tadm:
        assert tadm.find(digest) == []
        before = tadm.stats()
        first = tadm.ingest(data)
        assert first.uploaded and first.image.original_bytes == len(data)
        assert first.image.quality is not None and first.image.method in ("tadm", "plain")
        again = tadm.ingest(data)
        assert (again.uploaded, again.image) == (False, first.image)
        assert tadm.find(digest.upper()) == [first.image]
        after = tadm.stats()
    assert after.images == before.images + 1
    assert after.stored_bytes - before.stored_bytes == first.image.thumbnail_bytes
    assert after.original_bytes - before.original_bytes == len(data)


def test_the_async_client_has_the_same_operations(kodak_dir, tmp_path, server_url):
    data = write_photo(kodak_dir, tmp_path / "photo.jpg", 14, fmt="JPEG").read_bytes()

    async def scenario():
        async with AsyncClient(server_url) as tadm:
            before = await tadm.stats()
            done = await tadm.ingest(data, scale=16)
            found = await tadm.find(hashlib.sha256(data).hexdigest())
            return before, done, found, await tadm.stats()

    before, done, found, after = asyncio.run(scenario())
    assert done.uploaded and found == [done.image]
    assert after.images == before.images + 1


def test_auto_scale_with_a_quality_target(kodak_dir, tmp_path, server_url):
    photo = write_photo(kodak_dir, tmp_path / "photo.png", 15)
    with Client(server_url) as tadm:
        served = {model.scale for model in tadm.info().models}
        image = tadm.upload(photo, scale="auto", min_psnr_y=20.0, min_ssimulacra2=-100.0)
    assert image.auto and image.scale in served and image.quality is not None


def test_ingest_gives_up_on_an_unreachable_api_after_retrying(tmp_path):
    with Client(f"http://127.0.0.1:{free_port()}") as tadm, pytest.raises(httpx.ConnectError):
        tadm.ingest(b"\x89PNG\r\n\x1a\n", retry_for=1.5)  # tries again after 1 s, then gives up
