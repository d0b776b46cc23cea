"""Fixtures of the client tests (the live dev server, `server_url`, is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.client import Client


@pytest.fixture
def client(server_url: str) -> Iterator[Client]:
    with Client(server_url, poll_interval=0.2) as tadm:
        yield tadm
