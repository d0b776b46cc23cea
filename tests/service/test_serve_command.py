"""`tadm serve --workers N`: N API processes share one port (uvicorn's supervisor), each building the app from
the same TADM_* environment; `--dev` refuses it with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from service.dev.embedded_redis import free_port
from tests.service.stack import REPO
from tests.service.test_dev_server import children, running, wait_for

pytestmark = pytest.mark.slow


def test_serve_runs_n_api_processes(settings, tmp_path):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TADM_")}, "PYTHONPATH": str(REPO),
           "TADM_REDIS_URL": settings.redis_url, "TADM_KEY_PREFIX": settings.key_prefix,
           "TADM_STORAGE_DIR": str(tmp_path / "storage")}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--workers", "2", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 120, "the API on its port")
        servers = wait_for(lambda: [p for p, cmd in children(proc.pid).items() if "spawn_main" in cmd] or None,
                           60, "the server processes")
        assert len(servers) == 2
        assert httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=5).json()["workers"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not any(running(p) for p in servers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dev_refuses_several_api_processes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--dev", "--workers", "2"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("tadm serve: error: `--workers` is for `tadm serve`")
