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
