"""Fixtures shared by every test area: where the project's real photographs live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The 24 Kodak photographs (kodak__kodim01.png ... kodak__kodim24.png) are not part of the repository:
# TADM_KODAK_DIR names their folder, else shared/data/kodak beside the repository. Tests that need them skip
# without them.
KODAK_DIR = Path(os.environ.get("TADM_KODAK_DIR") or REPO.parent / "shared" / "data" / "kodak")


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not KODAK_DIR.is_dir():
        pytest.skip(f"the Kodak photographs are not at {KODAK_DIR} (set TADM_KODAK_DIR)")
    return KODAK_DIR


@pytest.fixture(scope="session")
def kodak_image(kodak_dir: Path) -> Path:
    return kodak_dir / "kodak__kodim23.png"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """One live `tadm serve --dev` per pytest run, shared by the client and browser tests."""
    from tests.client.devserver import DevServer

    server = DevServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on a free port, for one test module: its URL."""
    import subprocess
    import sys
    import time

    import httpx

    from service.dev.embedded_redis import free_port

    pytest.importorskip("moto.server", reason="moto[server] is not installed (the `dev` extra)")
    pytest.importorskip("boto3", reason="boto3 is not installed (the `s3` extra)")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)
