"""Fixtures shared by every test area: where the project's real photographs live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    path = SHARED_DATA / "kodak"
    if not path.is_dir():
        pytest.skip(f"the Kodak photographs are not at {path}")
    return path


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
