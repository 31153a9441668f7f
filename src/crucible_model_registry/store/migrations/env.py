"""Alembic environment: our tables only, our own version table, the caller's connection."""

from __future__ import annotations

from typing import Any

from alembic import context

from crucible_model_registry.store.tables import PREFIX, VERSION_TABLE, metadata

config = context.config


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # A host application's tables live in the same database: never look at them.
    if type_ == "table":
        return bool(name and name.startswith(PREFIX))
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith(PREFIX)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
