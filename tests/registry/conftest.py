"""Fixtures for registry tests: the moto S3 server, the Hub double, and the remote registry.

``db_url`` and ``registry`` gain a third parameter here, ``remote``: the registry is a
``RemoteRegistry`` talking to a ``cmr serve`` process over SQLite, and ``db_url`` is that
server's database (so a second, in-process client of it can still be made). The remote
registry's ``engine`` is an engine on the server's database, for the tests that check with
raw SQL what was (not) written; every registry call still goes over HTTP. Tests marked
``@pytest.mark.in_process`` and tests that build their own registry from ``db_url`` (with
storage backends of their own) skip the remote run, saying why. The server runs with access
control on; the remote registry sends its admin token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool
from tests.db_reset import empty_registry_tables
from tests.servers.hub import hub_repo, hub_server
from tests.servers.registry_server import (
    RegistryServer,
    remote_server_postgres,
    remote_server_sqlite,
)
from tests.servers.s3 import s3_bucket, s3_server

from crucible_model_registry import Registry, configure
from crucible_model_registry.registry import RemoteRegistry
from crucible_model_registry.storage.local import LocalStorage

__all__ = [
    "hub_repo",
    "hub_server",
    "remote_server_postgres",
    "remote_server_sqlite",
    "s3_bucket",
    "s3_server",
]


class InspectableRemoteRegistry(RemoteRegistry):
    """A RemoteRegistry whose ``engine`` reaches the server's database, for assertions only."""

    def __init__(self, server: RegistryServer) -> None:
        super().__init__(server.url, token=server.token)
        self._inspection = create_engine(server.database_url, poolclass=NullPool)

    @property
    def engine(self) -> Engine:  # type: ignore[override]
        return self._inspection

    def close(self) -> None:
        super().close()
        self._inspection.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("remote", marks=pytest.mark.remote),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty registry database: SQLite, PostgreSQL, or a server's (remote)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
        empty_registry_tables(url)
        return url
    marker = request.node.get_closest_marker("in_process")
    if marker is not None:
        pytest.skip(f"in-process only: {marker.args[0] if marker.args else 'raw SQL'}")
    if not {"registry", "reg", "local_reg"} & set(request.fixturenames):
        pytest.skip(
            "in-process only: builds its own Registry from db_url with its own storage; "
            "the remote runs go through the `registry` fixture"
        )
    server: RegistryServer = request.getfixturevalue("remote_server_sqlite")
    server.reset()
    return server.database_url


@pytest.fixture
def registry(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on ``db_url`` (local artifact storage), also the default; or a remote one."""
    if request.node.callspec.params.get("db_url") == "remote":
        server: RegistryServer = request.getfixturevalue("remote_server_sqlite")
        reg: Registry = InspectableRemoteRegistry(server)
    else:
        reg = Registry.from_url(db_url, storage=LocalStorage(tmp_path / "artifacts"))
    configure(reg)
    yield reg
    configure(None)
    reg.close()
