"""Reading a whole registry as export lines, one model at a time, in constant memory.

Every table is read by one streaming query (a server-side cursor on PostgreSQL, ``yield_per``
batches) ordered by model id; the queries advance together, so that each model's lines of
every kind come out as one :class:`ModelBundle` while only that model's lines are in
memory. The whole export is one read transaction (REPEATABLE READ on PostgreSQL), so that
it is a consistent snapshot while writers carry on.

Tables are found in the schema's metadata: a per-model table this module does not know
(a history table added by a later migration) is exported generically, see
:func:`extra_tables`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, func, select
from sqlalchemy.engine import Result

from crucible_model_registry.domain.exchange import ModelBundle, format_time
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.tables import (
    ALIAS_CHANGES,
    ALIASES,
    ARTIFACTS,
    EDGES,
    METRICS,
    MODEL_TAGS,
    MODELS,
    PENDING_UPLOADS,
    POLICIES,
    PREFIX,
    TRANSITIONS,
    VERSION_TAGS,
    VERSIONS,
    UTCDateTime,
    metadata,
)

__all__ = ["BATCH", "count_versions", "export_bundles", "extra_kind", "extra_tables"]

BATCH = 2000
"""Rows fetched per round trip while streaming."""

V = VERSIONS.c
M = MODELS.c

_KNOWN = frozenset(
    {
        MODELS,
        VERSIONS,
        METRICS,  # derived from versions.metrics
        VERSION_TAGS,  # derived from versions.tags
        MODEL_TAGS,  # derived from models.tags
        ARTIFACTS,
        PENDING_UPLOADS,  # uploads under way: not registry content
        EDGES,
        TRANSITIONS,
        ALIASES,
        ALIAS_CHANGES,
        POLICIES,
    }
)


def extra_tables() -> list[Table]:
    """Per-model tables beyond the core ones (history tables of later migrations).

    A table qualifies when it has a ``model_id`` column; its rows are exported with every
    column but an autoincrement ``id``, the model by name and a ``version_id`` as the
    version string. Tables that may hold secrets (tokens) are never exported.
    """
    return [
        t
        for t in metadata.sorted_tables
        if t not in _KNOWN and "model_id" in t.c and "token" not in t.name
    ]


def extra_kind(table: Table) -> str:
    """The kind (and file stem) of an extra table's lines: its name without our prefix."""
    return table.name.removeprefix(PREFIX)


def count_versions(db: Database, model_glob: str | None = None) -> int:
    """How many versions an export of models matching ``model_glob`` holds."""
    with db.read() as conn:
        if model_glob is None:
            return int(conn.execute(select(func.count()).select_from(VERSIONS)).scalar_one())
        rows = conn.execute(
            select(M.name, func.count(V.id)).join_from(MODELS, VERSIONS).group_by(M.name)
        )
        return sum(int(n) for name, n in rows if fnmatch.fnmatchcase(name, model_glob))


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _stream(conn: Connection, statement: Select[Any]) -> Iterator[Any]:
    result: Result[Any] = conn.execution_options(yield_per=BATCH).execute(statement)
    yield from result


class _Cursor:
    """A streaming query with one row of look-ahead, consumed model by model."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def take(self, model_id: int) -> Iterator[Any]:
        """The rows of ``model_id`` (rows of models before it are dropped)."""
        while self._next is not None and self._next.model_id <= model_id:
            row = self._next
            self._next = next(self._rows, None)
            if row.model_id == model_id:
                yield row


def _version_of(table: Table, column: str = "version_id") -> Select[Any]:
    version = VERSIONS.alias("of_version")
    return select(table, version.c.version.label("version_string")).outerjoin_from(
        table, version, table.c[column] == version.c.id
    )


def _statements() -> dict[str, Select[Any]]:
    artifacts = select(ARTIFACTS, V.model_id, V.version.label("version_string")).join_from(
        ARTIFACTS, VERSIONS, ARTIFACTS.c.version_id == V.id
    )
    child, parent, parent_model = VERSIONS.alias("child"), VERSIONS.alias("parent"), MODELS
    edges = (
        select(
            EDGES,
            child.c.model_id,
            child.c.version.label("child_version"),
            parent.c.version.label("parent_version"),
            parent_model.c.name.label("parent_model"),
        )
        .join_from(EDGES, child, EDGES.c.target_version_id == child.c.id)
        .join(parent, EDGES.c.source_version_id == parent.c.id)
        .join(parent_model, parent.c.model_id == parent_model.c.id)
    )
    aliases = _version_of(ALIASES)
    return {
        "versions": select(VERSIONS).order_by(V.model_id, V.id),
        "artifacts": artifacts.order_by(V.model_id, ARTIFACTS.c.id),
        "lineage_edges": edges.order_by(child.c.model_id, EDGES.c.id),
        "stage_transitions": _version_of(TRANSITIONS).order_by(
            TRANSITIONS.c.model_id, TRANSITIONS.c.id
        ),
        "aliases": aliases.order_by(ALIASES.c.model_id, ALIASES.c.alias),
        "alias_changes": _version_of(ALIAS_CHANGES).order_by(
            ALIAS_CHANGES.c.model_id, ALIAS_CHANGES.c.id
        ),
        "promotion_policies": select(POLICIES).order_by(POLICIES.c.model_id),
    }


def _extra_statement(table: Table) -> Select[Any]:
    order = [table.c.model_id, *(c for c in table.primary_key.columns if c.name != "model_id")]
    if "version_id" in table.c:
        return _version_of(table).order_by(*order)
    return select(table).order_by(*order)


def _versioned(line: dict[str, Any], row: Any) -> dict[str, Any]:
    """The version string of a row's ``version_id``; a deleted version keeps its old id."""
    line["version"] = row.version_string
    if row.version_string is None and row.version_id is not None:
        line["deleted_version_id"] = row.version_id
    return line


def _line(kind: str, model: str, row: Any) -> dict[str, Any]:
    if kind == "versions":
        return {
            "model": model,
            "version": row.version,
            "stage": row.stage,
            "recipe": row.recipe,
            "base_model": row.base_model,
            "config_hash": row.config_hash,
            "training_config": row.training_config,
            "metrics": row.metrics,
            "tags": row.tags,
            "description": row.description,
            "metadata": row.metadata,
            "created_at": _time(row.created_at),
            "updated_at": _time(row.updated_at),
        }
    if kind == "artifacts":
        return {
            "model": model,
            "version": row.version_string,
            "type": row.type,
            "storage_backend": row.storage_backend,
            "storage_path": row.storage_path,
            "checksum": row.checksum,
            "size_bytes": row.size_bytes,
            "manifest": row.manifest,
            "created_at": _time(row.created_at),
        }
    if kind == "lineage_edges":
        return {
            "model": model,
            "version": row.child_version,
            "parent_model": row.parent_model,
            "parent_version": row.parent_version,
            "relationship": row.relationship,
            "metadata": row.metadata,
            "created_at": _time(row.created_at),
        }
    if kind == "stage_transitions":
        line = _versioned({"model": model}, row)
        line.update(
            from_stage=row.from_stage,
            to_stage=row.to_stage,
            reason=row.reason,
            actor=row.actor,
            at=_time(row.at),
        )
        return line
    if kind == "aliases":
        return {
            "model": model,
            "alias": row.alias,
            "version": row.version_string,
            "updated_at": _time(row.updated_at),
        }
    if kind == "alias_changes":
        line = {"model": model, "alias": row.alias}
        _versioned(line, row)
        line.update(reason=row.reason, actor=row.actor, at=_time(row.at))
        return line
    if kind == "promotion_policies":
        return {"model": model, "policy": row.policy, "updated_at": _time(row.updated_at)}
    raise AssertionError(kind)


def extra_line(table: Table, model: str, row: Any) -> dict[str, Any]:
    """An extra table's row as an export line (see :func:`extra_tables`)."""
    line: dict[str, Any] = {"model": model}
    mapping = row._mapping
    for column in table.c:
        if column.name == "model_id" or (column.name == "id" and column.autoincrement is True):
            continue
        if column.name == "version_id":
            _versioned(line, row)
            continue
        value = mapping[column.name]
        line[column.name] = _time(value) if isinstance(column.type, UTCDateTime) else value
    return line


def _model_line(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "tags": row.tags,
        "metadata": row.metadata,
        "version_seq": row.version_seq,
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def export_bundles(db: Database, *, model_glob: str | None = None) -> Iterator[ModelBundle]:
    """Every model (matching ``model_glob``, an fnmatch pattern) with all its lines, by id.

    A generator holding one read transaction open until it is exhausted or closed.
    """
    with db.read() as conn:
        if db.is_postgres:
            # One snapshot for every query, so that the lines agree with one another.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        extras = extra_tables()
        cursors = {kind: _Cursor(_stream(conn, s)) for kind, s in _statements().items()}
        for table in extras:
            cursors[extra_kind(table)] = _Cursor(_stream(conn, _extra_statement(table)))
        by_kind = {extra_kind(t): t for t in extras}
        for model in _stream(conn, select(MODELS).order_by(M.id)):
            wanted = model_glob is None or fnmatch.fnmatchcase(model.name, model_glob)
            bundle = ModelBundle(_model_line(model))
            for kind, cursor in cursors.items():
                rows = cursor.take(model.id)
                if not wanted:
                    for _ in rows:
                        pass
                    continue
                extra = by_kind.get(kind)
                if extra is None:
                    bundle.lines[kind] = [_line(kind, model.name, row) for row in rows]
                else:
                    bundle.lines[kind] = [extra_line(extra, model.name, row) for row in rows]
            if wanted:
                yield bundle
