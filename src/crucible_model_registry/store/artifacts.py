"""Artifact records: adding one to a version, reading it back, deleting it."""

from __future__ import annotations

from sqlalchemy import delete, insert, select

from crucible_model_registry.domain.records import Artifact
from crucible_model_registry.domain.specs import ArtifactSpec
from crucible_model_registry.errors import NotFoundError
from crucible_model_registry.store._records import artifact_from_row
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.tables import ARTIFACTS, VERSIONS
from crucible_model_registry.store.versions import now

__all__ = ["add_artifact", "get_artifact", "remove_artifact"]

A = ARTIFACTS.c


def add_artifact(db: Database, version_id: int, spec: ArtifactSpec) -> Artifact:
    """Record an artifact of an existing version.

    Raises:
        NotFoundError: the version no longer exists (e.g. deleted during the upload).
    """
    with db.write() as conn:
        query = select(VERSIONS.c.id).where(VERSIONS.c.id == version_id)
        if not db.is_sqlite:
            # Hold the version until commit, so a concurrent delete cannot orphan the record.
            query = query.with_for_update()
        if conn.execute(query).scalar() is None:
            raise NotFoundError("version", version_id, "it was deleted before the upload finished")
        row = conn.execute(
            insert(ARTIFACTS)
            .values(
                version_id=version_id,
                type=spec.type.value,
                storage_backend=spec.storage_backend,
                storage_path=spec.storage_path,
                checksum=spec.checksum,
                size_bytes=spec.size_bytes,
                manifest=spec.manifest,
                created_at=now(),
            )
            .returning(*ARTIFACTS.c)
        ).one()
    return artifact_from_row(row)


def get_artifact(db: Database, artifact_id: int) -> Artifact:
    """The artifact record with this id.

    Raises:
        NotFoundError: there is none.
    """
    with db.read() as conn:
        row = conn.execute(select(ARTIFACTS).where(A.id == artifact_id)).first()
    if row is None:
        raise NotFoundError("artifact", artifact_id)
    return artifact_from_row(row)


def remove_artifact(db: Database, artifact_id: int) -> Artifact:
    """Delete the record and return it as it was.

    Raises:
        NotFoundError: there is none.
    """
    with db.write() as conn:
        row = conn.execute(select(ARTIFACTS).where(A.id == artifact_id)).first()
        if row is None:
            raise NotFoundError("artifact", artifact_id)
        conn.execute(delete(ARTIFACTS).where(A.id == artifact_id))
    return artifact_from_row(row)
