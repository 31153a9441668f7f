"""Reading a whole registry as export lines, one model at a time, in constant memory.

Every table is read by one streaming query (a server-side cursor on PostgreSQL, ``yield_per``
batches) ordered by model id; the queries advance together, so that each model's lines of
every kind come out as one :class:`ExportBundle` while only that model's lines are in
memory. The whole export is one read transaction (REPEATABLE READ on PostgreSQL), so that
it is a consistent snapshot while writers carry on.

Tables are found in the schema's metadata: a per-model table this module does not know
(a history table added by a later migration) is exported generically, see
:func:`extra_tables`.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    Text,
    case,
    cast,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.engine import Result
from sqlalchemy.types import NullType

from crucible_model_registry.domain.exchange import (
    CORE_KINDS,
    ExportBundle,
    ExportPlan,
    format_time,
)
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

__all__ = [
    "BATCH",
    "count_versions",
    "export_bundles",
    "export_plan",
    "extra_kind",
    "extra_line",
    "extra_tables",
]

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
    for partition in result.partitions():
        yield from partition


class _Cursor:
    """A streaming query with one row of look-ahead, consumed model by model."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def take(self, model_id: int) -> Iterator[Any]:
        """The rows of ``model_id`` (rows of models before it are dropped)."""
        while self._next is not None and self._next[0] <= model_id:
            row = self._next
            self._next = next(self._rows, None)
            if row[0] == model_id:
                yield row


# --------------------------------------------------------------------------- lines in SQL
#
# The core kinds' lines are rendered by the database as JSON text (json_build_object on
# PostgreSQL, json_object on SQLite): an export then moves text from the cursor to the file
# without building a Python value per column, which tripled its speed (bench/move.py).
# Times come out as format_time writes them; JSON columns are embedded as stored.


class _Sql:
    """The dialect's JSON object, time and JSON-column expressions."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def obj(self, **fields: ColumnElement[Any]) -> ColumnElement[str]:
        build = func.json_build_object if self.pg else func.json_object
        args: list[Any] = []
        for key, value in fields.items():
            args += [literal(key, String), value]
        return cast(build(*args), Text)

    def time(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.pg:
            return func.to_char(
                func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
            )
        # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff', naive UTC.
        return func.replace(cast(column, Text), " ", "T").concat("+00:00")

    def json(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # PostgreSQL's json type embeds as it is; SQLite keeps JSON as text: json() marks it.
        return type_coerce(column, NullType()) if self.pg else func.json(type_coerce(column, Text))

    def orphan(self, version_string: ColumnElement[Any], version_id: ColumnElement[Any]) -> Any:
        """A deleted version's old id (history rows outlive their version), else null."""
        return case((version_string.is_(None), version_id), else_=None)


def _line_statements(dialect: str) -> dict[str, Select[Any]]:
    q = _Sql(dialect)
    a = ARTIFACTS.c
    versions = select(
        V.model_id,
        q.obj(
            model=M.name,
            version=V.version,
            stage=V.stage,
            recipe=V.recipe,
            base_model=V.base_model,
            config_hash=V.config_hash,
            training_config=q.json(V.training_config),
            metrics=q.json(V.metrics),
            tags=q.json(V.tags),
            description=V.description,
            metadata=q.json(V.metadata),
            registered_by=V.registered_by,
            created_at=q.time(V.created_at),
            updated_at=q.time(V.updated_at),
        ),
    ).join_from(VERSIONS, MODELS, V.model_id == M.id)
    artifacts = (
        select(
            V.model_id,
            q.obj(
                model=M.name,
                version=V.version,
                type=a.type,
                storage_backend=a.storage_backend,
                storage_path=a.storage_path,
                checksum=a.checksum,
                size_bytes=a.size_bytes,
                manifest=q.json(a.manifest),
                created_at=q.time(a.created_at),
            ),
        )
        .join_from(ARTIFACTS, VERSIONS, a.version_id == V.id)
        .join(MODELS, V.model_id == M.id)
    )
    child, parent, parent_model = VERSIONS.alias("child"), VERSIONS.alias("parent"), MODELS.alias()
    e = EDGES.c
    edges = (
        select(
            child.c.model_id,
            q.obj(
                model=M.name,
                version=child.c.version,
                parent_model=parent_model.c.name,
                parent_version=parent.c.version,
                relationship=e.relationship,
                metadata=q.json(e.metadata),
                created_at=q.time(e.created_at),
            ),
        )
        .join_from(EDGES, child, e.target_version_id == child.c.id)
        .join(MODELS, child.c.model_id == M.id)
        .join(parent, e.source_version_id == parent.c.id)
        .join(parent_model, parent.c.model_id == parent_model.c.id)
    )
    of = VERSIONS.alias("of_version")
    t = TRANSITIONS.c
    transitions = select(
        t.model_id,
        q.obj(
            model=M.name,
            version=of.c.version,
            deleted_version_id=q.orphan(of.c.version, t.version_id),
            from_stage=t.from_stage,
            to_stage=t.to_stage,
            reason=t.reason,
            actor=t.actor,
            at=q.time(t.at),
        ),
    ).select_from(
        TRANSITIONS.join(MODELS, t.model_id == M.id).outerjoin(of, t.version_id == of.c.id)
    )
    al = ALIASES.c
    aliases = select(
        al.model_id,
        q.obj(
            model=M.name,
            alias=al.alias,
            version=of.c.version,
            updated_at=q.time(al.updated_at),
        ),
    ).select_from(ALIASES.join(MODELS, al.model_id == M.id).join(of, al.version_id == of.c.id))
    ac = ALIAS_CHANGES.c
    alias_changes = select(
        ac.model_id,
        q.obj(
            model=M.name,
            alias=ac.alias,
            version=of.c.version,
            deleted_version_id=q.orphan(of.c.version, ac.version_id),
            reason=ac.reason,
            actor=ac.actor,
            at=q.time(ac.at),
        ),
    ).select_from(
        ALIAS_CHANGES.join(MODELS, ac.model_id == M.id).outerjoin(of, ac.version_id == of.c.id)
    )
    p = POLICIES.c
    policies = select(
        p.model_id,
        q.obj(model=M.name, policy=q.json(p.policy), updated_at=q.time(p.updated_at)),
    ).join_from(POLICIES, MODELS, p.model_id == M.id)
    return {
        "versions": versions.order_by(V.model_id, V.id),
        "artifacts": artifacts.order_by(V.model_id, a.id),
        "lineage_edges": edges.order_by(child.c.model_id, e.id),
        "stage_transitions": transitions.order_by(t.model_id, t.id),
        "aliases": aliases.order_by(al.model_id, al.alias),
        "alias_changes": alias_changes.order_by(ac.model_id, ac.id),
        "promotion_policies": policies.order_by(p.model_id),
    }


def _model_statement(dialect: str) -> Select[Any]:
    q = _Sql(dialect)
    line = q.obj(
        name=M.name,
        description=M.description,
        tags=q.json(M.tags),
        metadata=q.json(M.metadata),
        version_seq=M.version_seq,
        created_at=q.time(M.created_at),
        updated_at=q.time(M.updated_at),
    )
    return select(M.id, M.name, line).order_by(M.id)


def _one_line(text: str) -> str:
    # JSON text holds a raw line break only as whitespace (strings escape theirs), and a
    # JSON column is embedded as stored: keep every line on one line.
    if "\n" in text or "\r" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


def _extra_statement(table: Table) -> Select[Any]:
    order = [table.c.model_id, *(c for c in table.primary_key.columns if c.name != "model_id")]
    first = table.c.model_id.label("of_model_id")  # rows start with their model's id
    if "version_id" in table.c:
        version = VERSIONS.alias("of_version")
        return (
            select(first, table, version.c.version.label("version_string"))
            .outerjoin_from(table, version, table.c.version_id == version.c.id)
            .order_by(*order)
        )
    return select(first, table).order_by(*order)


def _versioned(line: dict[str, Any], row: Any) -> dict[str, Any]:
    """The version string of a row's ``version_id``; a deleted version keeps its old id."""
    line["version"] = row.version_string
    if row.version_string is None and row.version_id is not None:
        line["deleted_version_id"] = row.version_id
    return line


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


def export_plan(db: Database, model_glob: str | None = None) -> ExportPlan:
    """The versions an export of ``model_glob`` holds, its kinds and the source dialect."""
    kinds = [*CORE_KINDS, *(extra_kind(t) for t in extra_tables())]
    return ExportPlan(count_versions(db, model_glob), kinds, db.dialect)


def export_bundles(db: Database, *, model_glob: str | None = None) -> Iterator[ExportBundle]:
    """Every model (matching ``model_glob``, an fnmatch pattern) with all its lines, by id.

    A generator holding one read transaction open until it is exhausted or closed.
    """
    with db.read() as conn:
        if db.is_postgres:
            # One snapshot for every query, so that the lines agree with one another.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        extras = {extra_kind(t): t for t in extra_tables()}
        cursors = {
            kind: _Cursor(_stream(conn, s)) for kind, s in _line_statements(db.dialect).items()
        }
        for kind, table in extras.items():
            cursors[kind] = _Cursor(_stream(conn, _extra_statement(table)))
        for model_id, name, model_line in _stream(conn, _model_statement(db.dialect)):
            wanted = model_glob is None or fnmatch.fnmatchcase(name, model_glob)
            bundle = ExportBundle(name, {"models": [_one_line(model_line)]})
            for kind, cursor in cursors.items():
                rows = cursor.take(model_id)
                if not wanted:
                    for _ in rows:
                        pass
                    continue
                extra = extras.get(kind)
                if extra is None:
                    bundle.lines[kind] = [_one_line(row[1]) for row in rows]
                else:
                    bundle.lines[kind] = [
                        json.dumps(extra_line(extra, name, row), ensure_ascii=False) for row in rows
                    ]
            if wanted:
                yield bundle
