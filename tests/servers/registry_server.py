"""The registry server (``cmr serve``) as a real uvicorn process on loopback, for tests.

:func:`start_registry_server` runs the installed ``cmr`` executable over a database URL with
local artifact storage in a directory of the test's, on a free port, and waits until
``/readyz`` answers 200. :meth:`RegistryServer.reset` empties the database and the storage
between tests, so one process serves a whole session.

Access control is on, as ``cmr serve`` runs by default: the database holds an admin token
(``RegistryServer.token``, recreated by every reset) that the test clients send.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.pool import NullPool
from tests.db_reset import empty_registry_tables

from crucible_model_registry.domain.access import hash_token, new_token_secret
from crucible_model_registry.errors import SchemaNotReadyError
from crucible_model_registry.store.schema import check_schema
from crucible_model_registry.store.tables import TOKENS

__all__ = [
    "ADMIN",
    "RegistryServer",
    "free_port",
    "install_admin_token",
    "install_token",
    "start_registry_server",
]

ADMIN = "tester"
"""The name of the admin token every test server's database holds: the tests' CMR_ACTOR, so
that the histories name the same actor whether a test runs in process or through a server."""

CMR = str(Path(sys.executable).with_name("cmr"))


def free_port() -> int:
    """A TCP port nobody listens on at the moment (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RegistryServer:
    """A running ``cmr serve``: its URL, its database and storage, and its process."""

    url: str
    database_url: str
    storage_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)
    token: str = field(repr=False, default="")

    @property
    def auth(self) -> dict[str, str]:
        """The headers that authenticate a request as the admin token."""
        return {"authorization": f"Bearer {self.token}"}

    def stop(self, timeout: float = 15.0) -> int:
        """Stop gracefully (SIGTERM), killing it if it does not exit in ``timeout`` s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def reset(self) -> None:
        """Delete every row of the registry's tables and every stored artifact byte."""
        empty_registry_tables(self.database_url)
        install_admin_token(self.database_url, self.token)
        shutil.rmtree(self.storage_dir, ignore_errors=True)
        self.storage_dir.mkdir(parents=True)

    def get(self, path: str) -> tuple[int, bytes]:
        """A plain GET on the server (no client of ours in between)."""
        request = urllib.request.Request(self.url + path, headers=self.auth)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def install_admin_token(database_url: str, token: str, name: str = ADMIN) -> bool:
    """Store ``token`` as an admin token in the database (False: no schema there yet)."""
    return install_token(database_url, name, token, role="admin")


def install_token(
    database_url: str, name: str, token: str, *, role: str, models: tuple[str, ...] = ()
) -> bool:
    """Store ``token`` (its hash) under ``name`` with ``role`` on ``models``, replacing any.

    Returns False when the database has no registry schema yet.
    """
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        try:
            check_schema(engine)
        except SchemaNotReadyError:
            return False
        with engine.begin() as conn:
            conn.execute(TOKENS.delete().where(TOKENS.c.name == name))
            conn.execute(
                insert(TOKENS).values(
                    name=name,
                    token_hash=hash_token(token),
                    role=role,
                    models=list(models),
                    created_at=datetime.now(UTC),
                    created_by="tests",
                )
            )
        return True
    finally:
        engine.dispose()


def start_registry_server(
    database_url: str,
    workdir: Path,
    *,
    workers: int = 1,
    extra_args: tuple[str, ...] = (),
    storage_dir: Path | None = None,
    wait_for: str = "/readyz",
    ready_timeout: float = 30.0,
    extra_env: dict[str, str] | None = None,
    token: str | None = None,
) -> RegistryServer:
    """Start ``cmr serve`` over ``database_url`` on a free loopback port and wait until ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    storage = storage_dir or workdir / "artifacts"
    storage.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CMR_")},
        "CMR_HOME": str(workdir / "home"),
        "CMR_DATABASE_URL": database_url,
        "CMR_STORAGE_BACKEND": "local",
        "CMR_STORAGE_OPTIONS": json.dumps({"base_path": str(storage)}),
        "CMR_ACTOR": "server",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra_env or {})
    if token is None:
        token = new_token_secret()
        install_admin_token(database_url, token)
    for _attempt in range(3):  # a free port may be taken between the check and the bind
        port = free_port()
        log = workdir / f"server-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [CMR, "serve", "--port", str(port), "--workers", str(workers), *extra_args],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = RegistryServer(
            url=f"http://127.0.0.1:{port}",
            database_url=database_url,
            storage_dir=storage,
            process=process,
            log=log,
            env=env,
            token=token,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if server.get(wait_for)[0] == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.1)
        alive = process.poll() is None
        server.stop()
        if alive:  # it runs but is not ready: another port will not help
            break
    pytest.fail(f"cmr serve did not become ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def remote_server_sqlite(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[RegistryServer]:
    """One ``cmr serve`` over a SQLite database for the session."""
    workdir = tmp_path_factory.mktemp("remote-sqlite")
    database = workdir / "registry.db"
    shutil.copyfile(sqlite_template, database)
    server = start_registry_server(f"sqlite:///{database}", workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def remote_server_postgres(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[RegistryServer]:
    """One ``cmr serve`` over the session's PostgreSQL database."""
    server = start_registry_server(postgres_url, tmp_path_factory.mktemp("remote-postgres"))
    yield server
    server.stop()
