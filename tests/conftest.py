"""Test fixtures: a temporary CMR_HOME and a registry on SQLite and on PostgreSQL.

PostgreSQL is found in this order: ``CMR_TEST_POSTGRES_URL``; a server answering on
127.0.0.1:5432 (user ``postgres`` or ``root``); a throwaway cluster started here from the
installed binaries (as the ``postgres`` user, since PostgreSQL refuses to run as root).
Without any of them the PostgreSQL tests skip, except under ``CI=true``, where that fails.
Each test run gets a database of its own, dropped at the end, named ``cmr_test_*`` or with
the prefix ``CMR_TEST_DB_PREFIX`` gives (so that two checkouts can share a server).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.db_reset import empty_registry_tables
from tests.pg_names import database_name

from crucible_model_registry import Registry, configure
from crucible_model_registry.storage.local import LocalStorage

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_HOW_TO = (
    "PostgreSQL tests skipped: no server found. Set CMR_TEST_POSTGRES_URL="
    "postgresql+psycopg://user@host/db, run a server on 127.0.0.1:5432, or install "
    "PostgreSQL's binaries (apt-get install postgresql) so the tests can start one."
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own CMR_HOME and no default registry left over from another."""
    home = tmp_path_factory.mktemp("cmr-home")
    monkeypatch.setenv("CMR_HOME", str(home))
    monkeypatch.setenv("CMR_ACTOR", "tester")
    for var in (
        "CMR_DATABASE_URL",
        "CMR_STORAGE_BACKEND",
        "CMR_STORAGE_OPTIONS",
        "CMR_SERVER_URL",
        "CMR_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    configure(None)
    yield home
    configure(None)


# --------------------------------------------------------------------------- PostgreSQL


def _answers(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str | None]:
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb or shutil.which("runuser") is None:
        yield None
        return
    bindir = Path(initdb[-1]).parent
    workdir = Path(tempfile.mkdtemp(prefix="cmr-pg-"))
    data = workdir / "data"
    port = _free_port()
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    try:
        if run_as:
            shutil.chown(workdir, user="postgres")
        subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "--no-sync",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
        )
        opts = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-o", opts, "start"],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError, LookupError):
        shutil.rmtree(workdir, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A URL of a PostgreSQL maintenance database we may create databases through."""
    explicit = os.environ.get("CMR_TEST_POSTGRES_URL")
    if explicit:
        yield explicit
        return
    for user in ("postgres", "root"):
        url = f"postgresql+psycopg://{user}@127.0.0.1:5432/postgres"
        if _answers(url):
            yield url
            return
    with _throwaway_cluster() as url:
        if url is not None and _answers(url):
            yield url
            return
    if IN_CI:
        pytest.fail("CI=true but no PostgreSQL server could be found or started. " + PG_HOW_TO)
    pytest.skip(PG_HOW_TO)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    name = database_name()
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    registry = Registry.from_url(url)
    registry.migrate()
    registry.close()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "registry.db"
    registry = Registry.from_url(f"sqlite:///{path}")
    registry.migrate()
    with registry.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    registry.close()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "registry.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


# --------------------------------------------------------------------------- the registry


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty registry database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    url = str(request.getfixturevalue("postgres_url"))
    empty_registry_tables(url)
    return url


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on ``db_url`` with local artifact storage, also the default registry."""
    reg = Registry.from_url(db_url, storage=LocalStorage(tmp_path / "artifacts"))
    configure(reg)
    yield reg
    configure(None)
    reg.close()
