"""Storage backends (local FS; S3 against moto's server mode) and the LRU reconstruction cache on real Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from service.redis_keys import RedisKeys
from service.storage import reconstruction_key, sha256_hex, thumbnail_key
from service.storage.cache import ReconstructionCache
from service.storage.local import LocalStorage


def _exercise(storage) -> None:
    key = thumbnail_key(sha256_hex(b"one"))
    assert storage.get(key) is None and not storage.exists(key)
    storage.put(key, b"one")
    storage.put(key, b"one")  # content-addressed: a repeat write is harmless
    assert storage.get(key) == b"one" and storage.exists(key)
    assert storage.list("thumbnails/") == [key]
    storage.delete(key)
    storage.delete(key)  # deleting a missing key is not an error
    assert storage.get(key) is None


def test_local_storage_round_trip_and_atomic_write(tmp_path):
    storage = LocalStorage(tmp_path / "s")
    _exercise(storage)
    key = thumbnail_key("ab" * 32)
    storage.put(key, b"x" * 1000)
    assert not [p for p in (tmp_path / "s").rglob("*") if p.name.startswith(".tmp-")]
    with pytest.raises(ValueError, match="escapes"):
        storage.put("../outside", b"x")


def test_keys_accept_only_hashes():
    with pytest.raises(ValueError):
        thumbnail_key("../../etc/passwd")
    with pytest.raises(ValueError, match="`fmt`"):
        reconstruction_key("abcdef0123456789", "ab" * 32, "gif")


def test_s3_storage_against_moto_server(moto_server, monkeypatch):
    import boto3

    from service.storage.s3 import S3Storage

    # Credentials are required by botocore's signer; moto accepts any.
    for var, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket="tadm-test")
    storage = S3Storage("tadm-test", prefix="svc", endpoint_url=moto_server)
    _exercise(storage)
    storage.put("reconstructions/abcdef0123456789/" + "cd" * 32 + ".png", b"img")
    assert storage.list("reconstructions/") == ["reconstructions/abcdef0123456789/" + "cd" * 32 + ".png"]


def test_each_s3_storage_reads_the_credentials_set_when_it_is_made(monkeypatch):
    """boto3's default session keeps the first credentials it resolves: a storage made after a key rotation (or
    beside another configuration in one process) must not sign with the old key."""
    pytest.importorskip("boto3", reason="boto3 is not installed (the `s3` extra)")
    from service.storage.s3 import S3Storage

    keys = []
    for key in ("FIRSTKEY", "ROTATEDKEY"):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        storage = S3Storage("tadm-test", endpoint_url="http://127.0.0.1:9", region="us-east-1")
        keys.append(storage.client._request_signer._credentials.access_key)  # botocore's signer: no public getter
    assert keys == ["FIRSTKEY", "ROTATEDKEY"]


@pytest.mark.anyio
async def test_reconstruction_cache_evicts_least_recently_used(settings, tmp_path):
    redis = Redis.from_url(settings.redis_url)
    try:
        storage = LocalStorage(tmp_path / "cache")
        cache = ReconstructionCache(storage, redis, RedisKeys(settings.key_prefix), budget_bytes=250)
        keys = [reconstruction_key("abcdef0123456789", f"{i:02d}" * 32, "png") for i in range(3)]
        await cache.put(keys[0], b"a" * 100)
        await cache.put(keys[1], b"b" * 100)
        assert await cache.get(keys[0]) == b"a" * 100  # keys[0] is now the most recently used
        evicted = await cache.put(keys[2], b"c" * 100)
        assert evicted == [keys[1]]
        assert storage.get(keys[1]) is None and storage.get(keys[0]) is not None
        assert await cache.total_bytes() == 200
        await cache.remove(keys[0])
        assert await cache.total_bytes() == 100
    finally:
        await redis.aclose()


