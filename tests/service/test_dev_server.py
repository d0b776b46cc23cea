"""`tadm serve --dev` as a process tree: it restarts a worker that dies, its children stop with it however it
ends (SIGTERM, kill -9), and it refuses a Redis data directory another live Redis holds. Real processes, read
from /proc (Linux: the kill -9 guarantee rests on the kernel's parent-death signal)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.dev.embedded_redis import EmbeddedRedis
from tests.client.devserver import REPO, DevServer

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")]


def children(pid: int) -> dict[int, str]:
    """Live (not zombie) child processes of ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    """Running, or a zombie nobody reaped (which is a leak too)."""
    return Path(f"/proc/{pid}").exists()


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def started(server: DevServer) -> tuple[int, int]:
    """Start a dev server without waiting for its worker's model: (redis pid, worker pid) once both run."""
    server._wait_ready = lambda: None  # type: ignore[method-assign]
    server.start()
    assert server.process is not None
    wait_for(lambda: _get(f"{server.url}/healthz"), 120, f"/healthz:\n{server.log_tail()}")

    def pair():
        kids = children(server.process.pid)  # type: ignore[union-attr]
        redis = [p for p, cmd in kids.items() if "redis-server" in cmd]
        worker = [p for p, cmd in kids.items() if "service.cli worker" in cmd]
        return (redis[0], worker[0]) if redis and worker else None

    return wait_for(pair, 30, "the embedded Redis and the worker as children")


def _get(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_dead_worker_is_restarted_and_sigterm_stops_every_child():
    server = DevServer()
    try:
        redis_pid, worker_pid = started(server)
        os.kill(worker_pid, signal.SIGKILL)
        pid = server.process.pid  # type: ignore[union-attr]
        new_worker = wait_for(lambda: [p for p, cmd in children(pid).items()
                                       if "service.cli worker" in cmd and p != worker_pid], 60, "a new worker")[0]
        assert not alive(worker_pid)  # reaped, not left a zombie
        log = server.log_tail(400)
        assert re.search(rf"worker \(pid {worker_pid}\) exited with signal 9 \(SIGKILL\).*restarting it", log), log
        # The new worker loads its model and serves: its heartbeat makes the server ready.
        wait_for(lambda: re.search(rf"worker \S+-{new_worker} ready", server.log_tail(400)), 300,
                 f"the restarted worker's start:\n{server.log_tail()}")
        wait_for(lambda: _get(f"{server.url}/readyz"), 60, "/readyz after the restart")

        os.kill(pid, signal.SIGTERM)
        assert server.process.wait(120) == 0  # type: ignore[union-attr]
        assert not running(redis_pid) and not running(new_worker), server.log_tail()
        assert "SIGTERM: stopping the worker and Redis" in server.log_tail(400)
    finally:
        server.stop()


def test_kill_9_of_the_dev_server_takes_its_children_along():
    server = DevServer()
    try:
        redis_pid, worker_pid = started(server)
        server.process.kill()  # type: ignore[union-attr]
        server.process.wait(10)  # type: ignore[union-attr]
        wait_for(lambda: not running(redis_pid) and not running(worker_pid), 60,
                 "the embedded Redis and the worker to stop after their parent was killed")
        # The data directory is free again: a new server may own it.
        again = EmbeddedRedis(server.workdir / ".tadm" / "redis").start()
        again.stop()
    finally:
        server.stop()


def test_a_data_directory_held_by_a_live_redis_is_refused(tmp_path):
    holder = EmbeddedRedis(tmp_path / ".tadm" / "redis").start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TADM_")}
        result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--dev", "--port", "0"],
                                cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("tadm serve: error: another live Redis server")
        assert f"pid {holder.process.pid}" in last and "Traceback" not in result.stderr  # type: ignore[union-attr]
        assert holder.process.poll() is None  # type: ignore[union-attr]  # the holder is untouched
    finally:
        holder.stop()
