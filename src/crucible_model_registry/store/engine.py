"""Engines from URLs, and the read/write transactions every store function runs in."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError

from crucible_model_registry.domain.redaction import MASK, redact
from crucible_model_registry.errors import ConfigurationError, SchemaNotReadyError
from crucible_model_registry.store._translate import translate_errors

__all__ = ["Database", "create_registry_engine", "creating_database", "redact_url"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
IDLE_PING_SECONDS = 5.0


EXAMPLE_URLS = "sqlite:////absolute/path/registry.db or postgresql://user:password@host:5432/dbname"

# The C scanner behind json.loads, without loads' encoding sniffing and whitespace regexes:
# those cost more than the parse of the small documents a version row holds (three per
# row; issue 21). Anything it does not read cleanly to the end goes to json.loads, which
# accepts or rejects it exactly as before.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


_EMPTY_OBJECT = ("{}", b"{}")
_EMPTY_ARRAY = ("[]", b"[]")


def load_json(data: str | bytes) -> Any:
    """``json.loads``, faster on small documents: the JSON columns' deserializer."""
    # Empty metadata, tags and metrics are the most common values of all: new objects,
    # since records hand them to callers.
    if data in _EMPTY_OBJECT:
        return {}
    if data in _EMPTY_ARRAY:
        return []
    text = data if isinstance(data, str) else data.decode()
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def redact_url(url: str) -> str:
    """The URL with any password (and secret query parameter) masked, for messages and logs.

    Also a URL mistyped without its ``://`` (``postgres//user:pw@host/db``) keeps ``pw`` out.
    """
    masked = redact(url)
    if "://" in masked:
        return masked
    head, at, tail = masked.rpartition("@")
    start = head.find("//") + 2 if "//" in head else 0
    colon = head.find(":", start)
    if not at or colon < 0:
        return masked
    return f"{head[: colon + 1]}{MASK}@{tail}"


# Set while a migration runs: the only time a missing SQLite file may be created.
_CREATING: ContextVar[bool] = ContextVar("cmr_creating_database", default=False)


@contextlib.contextmanager
def creating_database() -> Iterator[None]:
    """Let registry engines create a missing SQLite database file inside this block.

    Migrations (``cmr init``, ``cmr db upgrade``, ``registry.migrate()``) run in it; every
    other call refuses a missing file instead of leaving an empty one behind a typo.
    """
    token = _CREATING.set(True)
    try:
        yield
    finally:
        _CREATING.reset(token)


def create_registry_engine(
    url: str, *, create_missing: bool = False, **engine_options: Any
) -> Engine:
    """An engine for a SQLAlchemy URL, tuned for the registry.

    ``postgresql://`` means psycopg 3. SQLite gets WAL mode, a busy timeout and foreign
    keys, and write transactions that take the write lock up front (``BEGIN IMMEDIATE``).
    Server connections are pinged before use only once they have sat idle for
    ``IDLE_PING_SECONDS`` (``pool_pre_ping=True`` pings on every checkout instead).

    Args:
        create_missing: let any call create a missing SQLite file (the embedded default);
            otherwise only a migration (:func:`creating_database`) may, and other calls
            raise :class:`SchemaNotReadyError` naming the path.

    Raises:
        ConfigurationError: for a malformed URL or a missing database driver.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"not a database URL: {redact_url(url)!r}; expected a SQLAlchemy URL such as "
            f"{EXAMPLE_URLS}"
        ) from exc
    except ValueError as exc:  # SQLAlchemy parses the port with int()
        raise ConfigurationError(
            f"database URL {redact_url(url)}: the port must be a number "
            "(postgresql://user@host:5432/db)"
        ) from exc
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigurationError(
            f"database URL {redact_url(url)}: the port must be between 1 and 65535"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine_options.setdefault("json_deserializer", load_json)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, **engine_options)
            _tune_sqlite(engine)
            if not create_missing:
                _refuse_missing_file(engine)
        else:
            ping_every_checkout = engine_options.pop("pool_pre_ping", False)
            engine = create_engine(parsed, pool_pre_ping=ping_every_checkout, **engine_options)
            if not ping_every_checkout:
                _ping_when_idle(engine)
            if engine.dialect.name == "postgresql":
                _sessions_in_utc(engine)
    except (NoSuchModuleError, ImportError) as exc:
        hint = (
            "pip install 'crucible-model-registry[postgres]'"
            if parsed.get_backend_name() == "postgresql"
            else "install the database driver for this URL"
        )
        raise ConfigurationError(
            f"no driver for {parsed.drivername!r} ({redact_url(url)}): {hint}"
        ) from exc
    return engine


def _refuse_missing_file(engine: Engine) -> None:
    database = engine.url.database
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return  # in memory, or a URI filename whose mode= says what it may do

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        # SQLite creates a missing file on connect: a typo in a URL would leave an empty
        # database behind and fail later with a less helpful "no schema".
        if _CREATING.get() or os.path.exists(database):
            return
        path = os.path.abspath(database)
        detail = f"no registry database at {path}: the file does not exist"
        if not os.path.isabs(database):
            detail += (
                f" (sqlite:///{database} is a path relative to the current directory; "
                f"an absolute path takes four slashes: sqlite:///{path})"
            )
        raise SchemaNotReadyError(detail + "; check the URL for a typo", command="cmr init")


def _ping_when_idle(engine: Engine) -> None:
    # A ping costs a round trip, a quarter of a registration's: ping a pooled connection
    # only after it sat idle, when the server may have dropped it (restart, idle timeout).
    # A failed ping replaces the connection before the call uses it.
    dbapi_error = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["cmr_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("cmr_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except dbapi_error as exc:
            raise DisconnectionError("pooled connection dropped while idle") from exc


def _sessions_in_utc(engine: Engine) -> None:
    # Every stored time is UTC; in a UTC session the driver hands timestamps over already
    # labelled with datetime.UTC, so reading a thousand versions converts none of them
    # (issue 21). Once per new connection; what the session shows as local time is all
    # this changes.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from pysqlite so that write transactions can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting
        # for the busy timeout; IMMEDIATE queues writers at BEGIN instead.
        mode = "IMMEDIATE" if conn.get_execution_options().get("cmr_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine plus the registry's transaction discipline: one call, one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        self.is_postgres = self.dialect == "postgresql"
        # PostgreSQL through a driver that runs the store's hand-written SQL as it is:
        # %(name)s parameters, Python lists sent as arrays.
        self.pg_native = self.is_postgres and engine.dialect.driver in ("psycopg", "psycopg2")

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction, committed on success; driver errors translated."""
        with translate_errors(), self.engine.connect() as plain:
            conn = plain.execution_options(cmr_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def one_statement(self) -> Iterator[Connection]:
        """A connection that commits each statement on its own; driver errors translated.

        For a write that is a single statement, which the server runs atomically: it saves
        the BEGIN and COMMIT round trips. Only for PostgreSQL, whose data-modifying CTEs
        fit a whole write in one statement.
        """
        with translate_errors(), self.engine.connect() as plain:
            yield plain.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on PostgreSQL per statement)."""
        with translate_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    def lock_clause(self) -> bool:
        """Does this dialect understand ``SELECT ... FOR UPDATE``?"""
        return not self.is_sqlite
