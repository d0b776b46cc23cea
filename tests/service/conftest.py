"""Fixtures of the service tests: one real Redis server per session (a fresh key prefix per test), and one
real three-node Redis Cluster for the tests that ask for it, real photo files cut from the Kodak set, the API
in-process over httpx's ASGI transport, and (in ``stack.py``) a real uvicorn + worker subprocess stack for
end-to-end runs, on either."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from service.config import Settings
from service.dev.embedded_redis import EmbeddedRedis
from tests.service.redis_cluster import LocalRedisCluster, missing_binaries
from tests.service.stack import Stack


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[LocalRedisCluster]:
    """Three redis-server processes joined by redis-cli into one cluster, started once per session."""
    if reason := missing_binaries():
        pytest.skip(f"no Redis Cluster: {reason}")
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["single", "cluster"])
def any_redis(request) -> tuple[str, bool]:
    """(Redis URL, is a cluster): a test that takes it runs on the single server and on the cluster."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster").url, True
    return request.getfixturevalue("redis_server").url, False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(redis_server: EmbeddedRedis, tmp_path: Path) -> Settings:
    """Settings for one test: its own key prefix and storage directory, no waiting by default."""
    return Settings(redis_url=redis_server.url, key_prefix=f"t{uuid.uuid4().hex[:10]}",
                    storage_dir=tmp_path / "storage", upload_wait_seconds=0, retry_after_seconds=3)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, lifespan included (the Redis pool and the storage open as in production)."""
    from service.api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tadm.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def _crop(path: Path, box: tuple[int, int, int, int], fmt: str, **save) -> bytes:
    with Image.open(path) as img:
        buf = io.BytesIO()
        img.convert("RGB").crop(box).save(buf, format=fmt, **save)
        return buf.getvalue()


@pytest.fixture(scope="session")
def photos(kodak_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """Real image files: crops of Kodak photographs in each accepted format, plus a full-size one."""
    out = tmp_path_factory.mktemp("photos")
    files = {
        "small_png": ("kodak__kodim01.png", (0, 0, 256, 192), "PNG", {}),
        "small_jpeg": ("kodak__kodim02.png", (64, 64, 320, 256), "JPEG", {"quality": 92}),
        "small_webp": ("kodak__kodim03.png", (128, 64, 384, 256), "WEBP", {"quality": 90}),
        "other_png": ("kodak__kodim04.png", (0, 0, 192, 128), "PNG", {}),
        "other2_png": ("kodak__kodim05.png", (0, 0, 192, 128), "PNG", {}),
        "tiny_png": ("kodak__kodim06.png", (0, 0, 8, 8), "PNG", {}),
    }
    paths = {}
    for name, (src, box, fmt, save) in files.items():
        path = out / f"{name}.{fmt.lower()}"
        path.write_bytes(_crop(kodak_dir / src, box, fmt, **save))
        paths[name] = path
    paths["full_png"] = kodak_dir / "kodak__kodim07.png"  # 768x512, read in place
    return paths


def _running_stack(stack: Stack) -> Iterator[Stack]:
    try:
        stack.start_api()
        stack.start_worker()
        stack.start_worker()
        stack.wait_for_workers(2)
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="session")
def stack(redis_server: EmbeddedRedis, tmp_path_factory) -> Iterator[Stack]:
    """uvicorn + two tiny-preset workers on one key prefix, shared by the end-to-end tests."""
    workdir = tmp_path_factory.mktemp("stack")
    yield from _running_stack(Stack(redis_server.url, workdir, redis_server=redis_server))


@pytest.fixture(scope="session")
def cluster_stack(redis_cluster: LocalRedisCluster, tmp_path_factory) -> Iterator[Stack]:
    """The same on the Redis Cluster (``TADM_REDIS_CLUSTER=true``), for the tests that run on both."""
    workdir = tmp_path_factory.mktemp("cluster-stack")
    yield from _running_stack(Stack(redis_cluster.url, workdir, cluster=True))


@pytest.fixture(params=["single", "cluster"])
def any_stack(request) -> Stack:
    """The end-to-end stack on the single Redis, then on the cluster."""
    return request.getfixturevalue("stack" if request.param == "single" else "cluster_stack")
