"""Rows turned into frozen records, with artifacts loaded in one batched round trip."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, select

from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
from crucible_model_registry.domain.records import Artifact, LineageEdge, Model, ModelVersion
from crucible_model_registry.store.tables import ARTIFACTS, MODELS, VERSIONS

__all__ = [
    "IN_CHUNK",
    "artifact_from_row",
    "edge_from_row",
    "load_versions",
    "model_from_row",
    "version_columns",
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


def artifact_from_row(row: Row[Any]) -> Artifact:
    m = row._mapping
    return Artifact(
        id=m["id"],
        model_version_id=m["version_id"],
        type=ArtifactType(m["type"]),
        storage_backend=m["storage_backend"],
        storage_path=m["storage_path"],
        checksum=m["checksum"],
        size_bytes=m["size_bytes"],
        created_at=m["created_at"],
        manifest=m["manifest"],
    )


def _artifacts_for(conn: Connection, ids: Sequence[int]) -> dict[int, list[Artifact]]:
    found: dict[int, list[Artifact]] = defaultdict(list)
    a = ARTIFACTS.c
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        rows = conn.execute(select(ARTIFACTS).where(a.version_id.in_(chunk)).order_by(a.id))
        for row in rows:
            found[row.version_id].append(artifact_from_row(row))
    return found


def versions_from_rows(conn: Connection, rows: Iterable[Row[Any]]) -> list[ModelVersion]:
    """Records for rows of :func:`version_columns`, in the rows' order, with artifacts."""
    rows = list(rows)
    artifacts = _artifacts_for(conn, [r.id for r in rows]) if rows else {}
    out = []
    for row in rows:
        m = row._mapping
        out.append(
            ModelVersion(
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
                artifacts=artifacts.get(m["id"], []),
                created_at=m["created_at"],
                updated_at=m["updated_at"],
            )
        )
    return out


def load_versions(conn: Connection, ids: Sequence[int]) -> list[ModelVersion]:
    """Records for these ids, in the given order (ids that do not exist are left out)."""
    by_id: dict[int, ModelVersion] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        rows = conn.execute(version_columns().where(V.id.in_(chunk)))
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
