"""The scripts the images run as health probes, run for real: the API's HTTP check against a local server,
the worker's heartbeat check against a real Redis with a heartbeat written by the service's own registry."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest
from deploy_files import DOCKER, REPO, settings_fields
from redis.asyncio import Redis

from service.queue.registry import ModelInfo, Registry, WorkerInfo
from service.redis_keys import RedisKeys


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    clean["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, str(DOCKER / name), *args], env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def http_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_api_healthcheck_passes_on_2xx_and_fails_otherwise(http_url):
    assert run_script("healthcheck.py", f"{http_url}/healthz").returncode == 0
    assert run_script("healthcheck.py", f"{http_url}/readyz").returncode == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = run_script("healthcheck.py", f"http://127.0.0.1:{closed_port}/healthz", "1")
    assert refused.returncode == 1 and "healthz" in refused.stderr


def heartbeat(redis_url: str, name: str, prefix: str) -> None:
    async def beat() -> None:
        client = Redis.from_url(redis_url)
        info = WorkerInfo(name, ModelInfo("0123456789abcdef", "tiny", 16, False), 0.0)
        await Registry(client, RedisKeys(prefix)).heartbeat(info, ttl_seconds=60)
        await client.aclose()

    asyncio.run(beat())


def test_worker_probe_follows_the_heartbeat(deploy_redis_url):
    env = {"TADM_REDIS_URL": deploy_redis_url, "TADM_KEY_PREFIX": "probe-test", "TADM_WORKER_NAME": "worker-a"}
    before = run_script("worker_probe.py", env=env)
    assert before.returncode == 1 and "no live worker" in before.stderr
    heartbeat(deploy_redis_url, "worker-a", "probe-test")
    assert run_script("worker_probe.py", env=env).returncode == 0
    # Another worker's heartbeat does not make this one live.
    assert run_script("worker_probe.py", env={**env, "TADM_WORKER_NAME": "worker-b"}).returncode == 1


def test_worker_probe_finds_the_default_hostname_pid_name(deploy_redis_url):
    env = {"TADM_REDIS_URL": deploy_redis_url, "TADM_KEY_PREFIX": "probe-default"}
    assert run_script("worker_probe.py", env=env).returncode == 1
    heartbeat(deploy_redis_url, f"{socket.gethostname()}-4242", "probe-default")
    assert run_script("worker_probe.py", env=env).returncode == 0


def test_worker_probe_with_redis_down_fails_readiness_but_not_liveness():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    env = {"TADM_REDIS_URL": f"redis://127.0.0.1:{closed_port}/0", "TADM_WORKER_NAME": "w"}
    readiness = run_script("worker_probe.py", "--timeout", "1", env=env)
    assert readiness.returncode == 1 and "redis unreachable" in readiness.stderr
    assert run_script("worker_probe.py", "--timeout", "1", "--liveness", env=env).returncode == 0
