"""Fixtures of the client tests: one live dev server per pytest run (shared with tests/web)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.client import Client
from tests.client import devserver


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    server = devserver.acquire()
    try:
        yield server.url
    finally:
        devserver.release()


@pytest.fixture
def client(server_url: str) -> Iterator[Client]:
    with Client(server_url, poll_interval=0.2) as tadm:
        yield tadm
