"""A live `tadm serve --dev` for the client and browser tests: a real subprocess on a free port, storage and
Redis of its own in a temporary directory.

The client tests and the browser tests share one server per pytest run (starting one costs a model build and a
worker): the session fixture `server_url` in tests/conftest.py owns it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
# Model build, worker start and Redis start on a busy 2-core machine.
STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevServer:
    """One ``tadm serve --dev`` process; ``url`` once started."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        """``settings``: TADM_* variables for the server beside the test defaults (it inherits no other)."""
        self.settings = dict(settings or {})
        self.workdir = Path(tempfile.mkdtemp(prefix="tadm-devserver-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TADM_")}
        env.update({
            # The dev server's own embedded Redis (no TADM_REDIS_URL) and storage in this test's directory.
            "TADM_STORAGE_DIR": str(self.workdir / "storage"),
            "PYTHONUNBUFFERED": "1",
            **self.settings,
        })
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--dev", "--port", str(self.port)],
                cwd=self.workdir, env={**env, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches the worker and Redis too
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"`tadm serve --dev` exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"`tadm serve --dev` not ready after {STARTUP_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM first: the worker finishes its batch and the embedded Redis shuts down cleanly.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
