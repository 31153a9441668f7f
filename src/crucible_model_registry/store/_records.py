"""Rows turned into frozen records, with artifacts loaded in one batched round trip."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Label, Row, Select, bindparam, select

from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
from crucible_model_registry.domain.records import Artifact, LineageEdge, Model, ModelVersion
from crucible_model_registry.store.tables import ARTIFACTS, MODELS, VERSIONS

__all__ = [
    "ARTIFACT_PREFIX",
    "IN_CHUNK",
    "artifact_columns",
    "artifact_from_row",
    "edge_from_row",
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
        type=ArtifactType(m[prefix + "type"]),
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
_VERSION = version_columns().where(V.id == bindparam("id"))
_VERSIONS = version_columns().where(V.id.in_(bindparam("ids", expanding=True)))


def _artifacts_for(conn: Connection, ids: Sequence[int]) -> dict[int, list[Artifact]]:
    found: dict[int, list[Artifact]] = defaultdict(list)
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        if len(chunk) == 1:
            rows = conn.execute(_ARTIFACTS_OF_ONE, {"id": chunk[0]})
        else:
            rows = conn.execute(_ARTIFACTS_OF, {"ids": list(chunk)})
        for row in rows:
            found[row.version_id].append(artifact_from_row(row))
    return found


def versions_from_rows(conn: Connection, rows: Iterable[Row[Any]]) -> list[ModelVersion]:
    """Records for rows of :func:`version_columns`, in the rows' order, with artifacts."""
    rows = list(rows)
    artifacts = _artifacts_for(conn, [r.id for r in rows]) if rows else {}
    return [_version_from_row(row, artifacts.get(row.id, [])) for row in rows]


def _version_from_row(row: Row[Any], artifacts: list[Artifact]) -> ModelVersion:
    m = row._mapping
    return ModelVersion(
        id=m["id"],
        model_id=m["model_id"],
        model_name=m["model_name"],
        version=m["version"],
        stage=Stage(m["stage"]),
        recipe=m["recipe"],
        base_model=m["base_model"],
        config_hash=m["config_hash"],
        training_config=m["training_config"],
        metrics=m["metrics"],
        tags=m["tags"],
        description=m["description"],
        artifacts=artifacts,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


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


def edge_from_row(row: Row[Any]) -> LineageEdge:
    m = row._mapping
    return LineageEdge(
        id=m["id"],
        source_version_id=m["source_version_id"],
        target_version_id=m["target_version_id"],
        relationship=Relationship(m["relationship"]),
        metadata=m["metadata"],
        created_at=m["created_at"],
    )
