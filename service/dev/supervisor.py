"""The dev server's worker, kept running: a worker that dies (``kill -9``, out of memory, a crash) is reaped, the
death is logged and a new worker is started, as an orchestrator does in production (compose ``restart:``,
Kubernetes restarting the container; see docs/service.md, Workers). Jobs the dead worker held are reclaimed by the new one
after ``TADM_HEARTBEAT_TIMEOUT_SECONDS``.

A worker that keeps dying right after its start (a missing model, a bad setting) is restarted with a growing
delay, up to ``MAX_BACKOFF_SECONDS``, rather than in a tight loop.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable

from .children import describe_exit, die_with_parent

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0  # a worker that ran this long died of something new: restart at once
STOP_GRACE_SECONDS = 60.0  # SIGTERM lets the worker finish its batch; then SIGKILL


class WorkerSupervisor:
    """Starts ``command`` and restarts it whenever it exits, until :meth:`stop`. Its thread starts every worker,
    so a worker dies with it (``die_with_parent``) and never outlives the dev server."""

    def __init__(self, command: list[str], env: dict[str, str],
                 on_restart: Callable[[int], None] | None = None) -> None:
        self.command, self.env = command, env
        self.on_restart = on_restart
        self.restarts = 0
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> WorkerSupervisor:
        self._thread.start()
        self._started.wait(30)
        return self

    def stop(self) -> None:
        """SIGTERM the worker (it drains its batch), SIGKILL it after ``STOP_GRACE_SECONDS``; wait for both."""
        self._stopping.set()
        self._thread.join(STOP_GRACE_SECONDS + 15)

    def _spawn(self) -> subprocess.Popen:
        proc = subprocess.Popen(self.command, env=self.env, preexec_fn=die_with_parent())
        logger.info("worker started (pid %d)", proc.pid)
        return proc

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        self.process = self._spawn()
        self._started.set()
        started_at = time.monotonic()
        while True:
            code = self._wait_or_stop(self.process)
            if code is None:  # stopping
                return
            lived = time.monotonic() - started_at
            backoff = FIRST_BACKOFF_SECONDS if lived >= STABLE_AFTER_SECONDS else backoff
            logger.warning("worker (pid %d) exited with %s after %.0f s; restarting it in %.0f s (restart %d)",
                           self.process.pid, describe_exit(code), lived, backoff, self.restarts + 1)
            if self._stopping.wait(backoff):
                return
            self.restarts += 1
            self.process = self._spawn()
            started_at = time.monotonic()
            if self.on_restart is not None:
                self.on_restart(self.restarts)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _wait_or_stop(self, proc: subprocess.Popen) -> int | None:
        """The worker's exit code once it exits (reaped: no zombie), or None after stopping it on request."""
        while not self._stopping.is_set():
            try:
                return proc.wait(0.5)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the worker finishes its batch and exits
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning("worker (pid %d) still running %.0f s after SIGTERM: killing it", proc.pid,
                               STOP_GRACE_SECONDS)
                proc.kill()
                proc.wait()
        return None
