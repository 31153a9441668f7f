"""Fixtures for the server tests: ``cmr serve`` over SQLite and over PostgreSQL, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.servers.registry_server import (
    RegistryServer,
    remote_server_postgres,
    remote_server_sqlite,
)

from crucible_model_registry.registry import RemoteRegistry

__all__ = ["remote_server_postgres", "remote_server_sqlite"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    """A running ``cmr serve`` with an empty database and storage: SQLite, then PostgreSQL."""
    found: RegistryServer = request.getfixturevalue(f"remote_server_{request.param}")
    found.reset()
    return found


@pytest.fixture
def remote(server: RegistryServer) -> Iterator[RemoteRegistry]:
    """A RemoteRegistry on ``server``."""
    registry = RemoteRegistry(server.url, token=server.token)
    yield registry
    registry.close()
