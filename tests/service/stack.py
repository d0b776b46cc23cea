"""A real deployment in miniature for end-to-end tests: ``uvicorn`` serving ``create_app`` and worker
subprocesses (the tiny preset, random weights), on the session's Redis (or Redis Cluster) under their own key
prefix.

The workers are the normal worker run by :mod:`tests.service.held_worker`, which installs a hold on the stack's
hold file: ``hold_jobs()`` keeps every reconstruction the workers run in the middle of its run until the block
ends, so a test stops, kills or cancels a job that is surely running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from service.config import Settings
from service.dev.embedded_redis import EmbeddedRedis, free_port
from service.redis_client import SyncRedis, connect_sync, keys_for

REPO = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT = 240  # a worker imports torch and builds the tiny model; slow on 2 busy cores


class Stack:
    def __init__(self, redis_url: str, workdir: Path, *, cluster: bool = False,
                 redis_server: EmbeddedRedis | None = None) -> None:
        self.redis_url, self.cluster, self.workdir = redis_url, cluster, workdir
        self.redis_server = redis_server  # the single server, for the tests that restart it
        self.prefix = f"e2e{uuid.uuid4().hex[:8]}"
        self.settings = Settings(redis_url=redis_url, redis_cluster=cluster, key_prefix=self.prefix)
        self.keys = keys_for(self.settings)
        self.hold_file = workdir / "hold"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage_dir = workdir / "storage"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TADM_REDIS_URL": redis_url,
            "TADM_REDIS_CLUSTER": "true" if cluster else "false",
            "TADM_KEY_PREFIX": self.prefix,
            "TADM_STORAGE_DIR": str(self.storage_dir),
            "TADM_MODEL_PRESET": "tiny",
            "TADM_MODEL_SCALE": "16",
            "TADM_DEVICE": "cpu",
            "TADM_UPLOAD_WAIT_SECONDS": "60",
            "TADM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
            "TADM_HEARTBEAT_TIMEOUT_SECONDS": "4",
            "TADM_RETRY_BACKOFF_SECONDS": "0.2",
            "TADM_MAX_ATTEMPTS": "3",
            # Small latent tiles: several UNet calls per image, so progress and cancellation have steps.
            "TADM_TILE_SIZE": "32",
            "TADM_TILE_STRIDE": "24",
            "TADM_TILE_BATCH_SIZE": "4",
            # The tiny preset's random weights give every photo back as noise: verified, every upload would be
            # stored as a plain thumbnail and no reconstruction would run the model these tests exercise. The
            # verifying path has its own tests (start_worker(verify=True), and test_verified_ingest in-process).
            "TADM_VERIFY_UPLOADS": "false",
            "OMP_NUM_THREADS": "1",
        }
        self.api: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.metrics_ports: dict[str, int] = {}  # each worker's Prometheus endpoint
        self.logs: list = []

    # -- processes ---------------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self.logs.append(log)
        return subprocess.Popen(args, env={**self.env, **(env or {}), "TADM_WORKER_NAME": name}, cwd=self.workdir,
                                stdout=log, stderr=subprocess.STDOUT)

    def start_api(self) -> None:
        self.api = self._spawn("api", [sys.executable, "-m", "uvicorn", "--factory", "service.api.app:create_app",
                                       "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.api.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{self.log('api')}")
            time.sleep(0.2)
        raise RuntimeError(f"uvicorn did not start:\n{self.log('api')}")

    def start_worker(self, *, verify: bool = False) -> str:
        """A worker subprocess; ``verify``: one that verifies uploads (``TADM_VERIFY_UPLOADS``)."""
        name = f"w{len(self.workers) + 1}-{uuid.uuid4().hex[:4]}"
        self.metrics_ports[name] = free_port()
        self.env["TADM_WORKER_METRICS_PORT"] = str(self.metrics_ports[name])
        self.workers[name] = self._spawn(name, [sys.executable, "-m", "tests.service.held_worker",
                                                str(self.hold_file)],
                                         {"TADM_VERIFY_UPLOADS": "true" if verify else "false"})
        return name

    def stop_workers(self) -> None:
        """SIGTERM every running worker and wait for it."""
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers.values():
            proc.wait(120)

    def live_worker_names(self) -> list[str]:
        client = self.redis()
        try:
            return sorted(n for n in self.workers if client.exists(self.keys.worker(n)))
        finally:
            client.close()

    def wait_for_workers(self, count: int, timeout: float = WORKER_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.live_worker_names()) >= count:
                return
            for name, proc in self.workers.items():
                if proc.poll() is not None and proc.returncode not in (0, -9):
                    raise RuntimeError(f"worker {name} exited with {proc.returncode}:\n{self.log(name)}")
            time.sleep(0.3)
        raise RuntimeError(f"fewer than {count} workers live after {timeout} s")

    def ensure_workers(self, count: int) -> None:
        """At least ``count`` live workers (starting new ones where some were killed)."""
        running = [n for n, p in self.workers.items() if p.poll() is None]
        for _ in range(count - len(running)):
            self.start_worker()
        self.wait_for_workers(count)

    def signal_workers(self, sig: int) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(sig)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        for proc in [*self.workers.values(), self.api]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in [*self.workers.values(), self.api]:
            if proc is not None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self.logs:
            log.close()

    # -- helpers -----------------------------------------------------------------------------------------
    def redis(self) -> SyncRedis:
        return connect_sync(self.settings)

    @contextlib.contextmanager
    def hold_jobs(self):
        """Reconstructions stop after their first UNet batch (running, progress published) until the block
        ends."""
        self.hold_file.touch()
        try:
            yield
        finally:
            self.hold_file.unlink(missing_ok=True)

    def held_job(self, client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
        """The job once a worker holds it mid-run (inside ``hold_jobs()``): running, its progress reported."""
        assert self.hold_file.exists(), "held_job() waits for a job that hold_jobs() holds"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] in ("queued", "running"), job
            if job["status"] == "running" and job["progress"] > 0:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not held mid-run after {timeout} s: {job}")

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def wait_job(self, client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {statuses} after {timeout} s: {job}")
