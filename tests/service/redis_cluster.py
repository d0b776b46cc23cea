"""A real Redis Cluster on loopback for the tests: three ``redis-server --cluster-enabled yes`` processes,
each with its own ports and temporary directory, joined by ``redis-cli --cluster create`` (no replicas)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from service.dev.children import die_with_parent
from service.dev.embedded_redis import free_port


def missing_binaries() -> str | None:
    """Why no cluster can start here, or None: it needs redis-server and redis-cli 7+ (``cluster-port``)."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            return f"{binary} is not on PATH (Debian: apt-get install redis-server; .ci/run installs it)"
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    major = int(version.split("v=")[1].split(".")[0]) if "v=" in version else 0
    if major < 7:
        return f"redis-server 7 or later is needed for a cluster on free ports ({version.strip()})"
    return None


class LocalRedisCluster:
    """``start()`` and ``stop()`` a three-node cluster with its data under ``directory``."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.directory = directory
        # Each node listens on a client port and a cluster-bus port, both chosen free (the default bus port,
        # client port + 10000, may be taken or beyond 65535).
        self.ports = [(free_port(), free_port()) for _ in range(nodes)]
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        """One node's URL: the cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.ports[0][0]}/0"

    def start(self, timeout: float = 60.0) -> LocalRedisCluster:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()  # no node outlives a cluster that did not come up
            raise
        return self

    def _start(self, timeout: float) -> None:
        for port, bus_port in self.ports:
            node_dir = self.directory / f"node-{port}"
            node_dir.mkdir(parents=True)
            self.processes.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--cluster-port", str(bus_port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", str(node_dir),
                 "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent()))
        for port, _ in self.ports:
            self._wait(port, "PING", lambda reply: reply is True, timeout, "did not answer")
        nodes = [f"127.0.0.1:{port}" for port, _ in self.ports]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=timeout)
        for port, _ in self.ports:  # every node must know every slot's owner before a client starts
            self._wait(port, "CLUSTER INFO", lambda reply: reply["cluster_state"] == "ok", timeout,
                       "did not see the cluster ready")

    def _wait(self, port: int, command: str, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with redis.Redis(port=port) as client:
                    if ready(client.execute_command(command)):
                        return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"Redis Cluster: node {port} {what} within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
