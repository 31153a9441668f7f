"""Rows turned into frozen records, with artifacts loaded in one batched round trip.

Decoding is on the hot path of every read that returns many versions (a lineage walk of
thousands, a broad query): values are read by position (the positions found once per
batch from the rows' column names), and stored enum values are looked up in a dict
rather than through the enum's constructor (issue 21).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Label,
    Row,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    select,
)

from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
from crucible_model_registry.domain.records import Artifact, LineageEdge, Model, ModelVersion
from crucible_model_registry.store.tables import ARTIFACTS, EDGES, MODELS, VERSIONS

__all__ = [
    "ARTIFACT_PREFIX",
    "ID_ARRAY",
    "IN_CHUNK",
    "artifact_columns",
    "artifact_from_row",
    "edge_from_row",
    "edges_from_rows",
    "enum_of",
    "id_array",
    "load_versions",
    "model_from_row",
    "version_columns",
    "version_with_artifacts",
    "versions_from_rows",
]

# Bound parameters per IN list: SQLite allows 32766, PostgreSQL 65535; stay well below.
IN_CHUNK = 5000

V = VERSIONS.c
M = MODELS.c

_E = TypeVar("_E", bound=StrEnum)
_MEMBERS: dict[type[StrEnum], dict[str, StrEnum]] = {
    enum: {member.value: member for member in enum} for enum in (Stage, Relationship, ArtifactType)
}


def enum_of(enum: type[_E], value: str) -> _E:
    """The member of ``enum`` a stored value names (a dict lookup: ~10x the constructor)."""
    member = _MEMBERS[enum].get(value)
    # Anything else goes through the constructor, which raises as it always did.
    return member if member is not None else enum(value)  # type: ignore[return-value]


def version_columns() -> Select[Any]:
    """SELECT of every version column plus its model's name (no WHERE yet)."""
    return select(VERSIONS, M.name.label("model_name")).join_from(
        VERSIONS, MODELS, V.model_id == M.id
    )


def artifact_from_row(row: Row[Any], *, prefix: str = "") -> Artifact:
    """The artifact in a row of the artifacts table, or of :func:`artifact_columns`."""
    m = row._mapping
    return Artifact(
        id=m[prefix + "id"],
        model_version_id=m[prefix + "version_id"],
        type=enum_of(ArtifactType, m[prefix + "type"]),
        storage_backend=m[prefix + "storage_backend"],
        storage_path=m[prefix + "storage_path"],
        checksum=m[prefix + "checksum"],
        size_bytes=m[prefix + "size_bytes"],
        created_at=m[prefix + "created_at"],
        manifest=m[prefix + "manifest"],
    )


ARTIFACT_PREFIX = "artifact_"


def artifact_columns() -> list[Label[Any]]:
    """The artifact columns, named with ``ARTIFACT_PREFIX`` to sit next to a version's."""
    return [c.label(ARTIFACT_PREFIX + c.name) for c in ARTIFACTS.c]


def version_with_artifacts(rows: Sequence[Row[Any]]) -> ModelVersion:
    """The record of one version from its rows, one per artifact, in order.

    The rows are :func:`version_columns` outer-joined with :func:`artifact_columns`.
    """
    artifacts = [
        artifact_from_row(row, prefix=ARTIFACT_PREFIX)
        for row in rows
        if row._mapping[ARTIFACT_PREFIX + "id"] is not None
    ]
    return _version_from_row(rows[0], artifacts)


# Built once, so that SQLAlchemy reuses their compiled forms; one id gets a statement of its
# own, whose SQL never changes, so that the driver can prepare it on the server.
_ARTIFACTS_OF_ONE = (
    select(ARTIFACTS).where(ARTIFACTS.c.version_id == bindparam("id")).order_by(ARTIFACTS.c.id)
)
_ARTIFACTS_OF = (
    select(ARTIFACTS)
    .where(ARTIFACTS.c.version_id.in_(bindparam("ids", expanding=True)))
    .order_by(ARTIFACTS.c.id)
)
# PostgreSQL: one array parameter instead of an IN list of thousands. The SQL text stays
# the same whatever the number of ids, so neither SQLAlchemy nor the driver re-parses a
# statement of thousands of placeholders on every call (most of an artifact batch's time).
# The array travels as its text form ("{1,2,3}", see id_array): the driver adapts a list
# element by element, which cost more than the query on a thousand ids.
ID_ARRAY = cast(bindparam("ids", type_=Text), ARRAY(BigInteger))
_ARTIFACTS_OF_ARRAY = (
    select(ARTIFACTS).where(ARTIFACTS.c.version_id == any_(ID_ARRAY)).order_by(ARTIFACTS.c.id)
)


def id_array(ids: Sequence[int]) -> str:
    """The PostgreSQL array literal of these ids, the value of :data:`ID_ARRAY`."""
    return "{" + ",".join(map(str, ids)) + "}"


_VERSION = version_columns().where(V.id == bindparam("id"))
_VERSIONS = version_columns().where(V.id.in_(bindparam("ids", expanding=True)))


def _artifacts_for(conn: Connection, ids: Sequence[int]) -> dict[int, list[Artifact]]:
    found: dict[int, list[Artifact]] = defaultdict(list)
    array = conn.dialect.name == "postgresql"
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        if len(chunk) == 1:
            rows = conn.execute(_ARTIFACTS_OF_ONE, {"id": chunk[0]})
        elif array:
            rows = conn.execute(_ARTIFACTS_OF_ARRAY, {"ids": id_array(chunk)})
        else:
            rows = conn.execute(_ARTIFACTS_OF, {"ids": chunk})
        for row in rows:
            found[row.version_id].append(artifact_from_row(row))
    return found


def versions_from_rows(conn: Connection, rows: Iterable[Row[Any]]) -> list[ModelVersion]:
    """Records for rows of :func:`version_columns`, in the rows' order, with artifacts."""
    rows = list(rows)
    if not rows:
        return []
    make = _VersionMaker(rows[0])
    artifacts = _artifacts_for(conn, [row[make.id_index] for row in rows])
    return [make(row, artifacts.get(row[make.id_index], [])) for row in rows]


# The columns of version_columns that make a ModelVersion, in the order of its fields
# (``artifacts``, loaded separately, goes between ``description`` and ``created_at``;
# ``metadata`` comes last).
_VERSION_FIELDS = (
    "id",
    "model_id",
    "model_name",
    "version",
    "stage",
    "recipe",
    "base_model",
    "config_hash",
    "training_config",
    "metrics",
    "tags",
    "description",
    "created_at",
    "updated_at",
    "metadata",
    "registered_by",
)


class _VersionMaker:
    """Builds ModelVersion records from rows whose columns sit where the first row's do."""

    __slots__ = ("get", "id_index")

    def __init__(self, row: Row[Any]) -> None:
        columns = list(row._fields)
        positions = [columns.index(name) for name in _VERSION_FIELDS]
        self.id_index = positions[0]
        self.get: Callable[[Row[Any]], tuple[Any, ...]] = itemgetter(*positions)

    def __call__(self, row: Row[Any], artifacts: list[Artifact]) -> ModelVersion:
        v = self.get(row)
        # Positional: keyword arguments cost a third more on a thousand rows.
        return ModelVersion(
            v[0], v[1], v[2], v[3], enum_of(Stage, v[4]), v[5], v[6], v[7], v[8], v[9],
            v[10], v[11], artifacts, v[12], v[13], v[14] or {}, v[15],
        )  # fmt: skip


def _version_from_row(row: Row[Any], artifacts: list[Artifact]) -> ModelVersion:
    return _VersionMaker(row)(row, artifacts)


def load_versions(conn: Connection, ids: Sequence[int]) -> list[ModelVersion]:
    """Records for these ids, in the given order (ids that do not exist are left out)."""
    by_id: dict[int, ModelVersion] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        if len(chunk) == 1:
            rows = conn.execute(_VERSION, {"id": chunk[0]})
        else:
            rows = conn.execute(_VERSIONS, {"ids": list(chunk)})
        for record in versions_from_rows(conn, rows):
            by_id[record.id] = record
    return [by_id[i] for i in ids if i in by_id]


def model_from_row(row: Row[Any]) -> Model:
    m = row._mapping
    return Model(
        id=m["id"],
        name=m["name"],
        description=m["description"],
        tags=m["tags"],
        metadata=m["metadata"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


# LineageEdge's fields, by position in a row of the whole edges table.
_EDGE_VALUES = itemgetter(
    *(
        list(EDGES.c.keys()).index(name)
        for name in (
            "id",
            "source_version_id",
            "target_version_id",
            "relationship",
            "metadata",
            "created_at",
        )
    )
)


def edge_from_row(row: Row[Any]) -> LineageEdge:
    """The edge in a row of every column of the edges table (``select(EDGES)``)."""
    edge_id, source, target, relationship, metadata, created_at = _EDGE_VALUES(row)
    return LineageEdge(
        edge_id, source, target, enum_of(Relationship, relationship), metadata, created_at
    )


def edges_from_rows(rows: Iterable[Row[Any]], *, sources: set[int]) -> list[LineageEdge]:
    """The edges in rows of ``select(EDGES)`` whose parent is one of ``sources``."""
    found = []
    for row in rows:
        edge_id, source, target, label, metadata, created_at = _EDGE_VALUES(row)
        if source in sources:
            relationship = enum_of(Relationship, label)
            found.append(LineageEdge(edge_id, source, target, relationship, metadata, created_at))
    return found
