"""Schema migration (Alembic) and the revision check behind SchemaNotReadyError."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, String, column, func, inspect, select, table

from crucible_model_registry.errors import SchemaNotReadyError
from crucible_model_registry.store._translate import translate_errors
from crucible_model_registry.store.engine import creating_database
from crucible_model_registry.store.tables import VERSION_TABLE

__all__ = ["HEAD_REVISION", "KNOWN_REVISIONS", "check_schema", "current_revision", "migrate"]

# The newest revision in migrations/versions; a unit test keeps the two in step, so that
# checking a database needs one SELECT and no Alembic import.
HEAD_REVISION = "0007"
# Every revision this release ships, oldest first (a unit test compares it with Alembic's).
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")

_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_KEY = 0x636D725F6D6967  # "cmr_mig": one registry migration at a time


def current_revision(engine: Engine) -> str | None:
    """The registry schema revision stored in the database, or None if it has none."""
    with translate_errors(), engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        version_num = column("version_num", String)
        row = conn.execute(select(version_num).select_from(table(VERSION_TABLE))).first()
        return None if row is None else str(row[0])


def check_schema(engine: Engine, *, command: str = "cmr db upgrade") -> None:
    """Raise unless the database holds the registry schema at the head revision.

    Raises:
        SchemaNotReadyError: naming the command that migrates it.
    """
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is None:
        raise SchemaNotReadyError(
            "this database has no crucible-model-registry schema", command=command
        )
    if revision not in KNOWN_REVISIONS:
        # Migrating cannot help: the database was upgraded by a newer release.
        raise SchemaNotReadyError(
            f"the registry schema is at revision {revision}, newer than this release of "
            f"crucible-model-registry knows (its newest is {HEAD_REVISION})",
            command="pip install -U crucible-model-registry",
        )
    raise SchemaNotReadyError(
        f"the registry schema is at revision {revision}, this version of "
        f"crucible-model-registry needs {HEAD_REVISION}",
        command=command,
    )


def migrate(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the registry's tables (and only those) to ``revision``."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # Several processes may meet a brand-new database at once (the embedded default
    # migrates on first use): take the write lock before Alembic reads the revision, so
    # the later ones find the schema done instead of creating the tables twice.
    # A migration is what may create a missing SQLite file (store/engine.py refuses otherwise).
    with creating_database(), translate_errors(), engine.connect() as plain:
        sqlite = plain.dialect.name == "sqlite"
        if sqlite:
            # Revisions rebuild tables (copy, drop, rename): dropping a table that others
            # reference would cascade-delete their rows while foreign keys are on. The
            # pragma is ignored inside a transaction, so it is set before BEGIN, and the
            # keys are checked before the commit instead.
            _sqlite_foreign_keys(plain, on=False)
        try:
            conn = plain.execution_options(cmr_write=True)  # SQLite: BEGIN IMMEDIATE
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                if sqlite:
                    _check_sqlite_foreign_keys(conn)
        finally:
            if sqlite:
                _sqlite_foreign_keys(plain, on=True)


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    # On the driver's connection, which runs in autocommit mode (engine.py): through
    # SQLAlchemy the statement would open a transaction first.
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _check_sqlite_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise SchemaNotReadyError(
            f"migrating would leave rows of {', '.join(tables)} pointing at missing rows; "
            "nothing was changed. Run `cmr db check` to see them",
            command="cmr db check",
        )
