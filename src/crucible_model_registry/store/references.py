"""What the records say about stored bytes: which paths artifacts reference and uploads claim.

Read by garbage collection (nothing referenced or claimed is removed) and by artifact
deletion (bytes another record references are kept). Reads only; no schema of its own.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from crucible_model_registry.domain.storage_reports import BackendRecords
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now
from crucible_model_registry.store.tables import ARTIFACTS, MODELS, PENDING_UPLOADS

__all__ = ["BackendRecords", "artifacts_sharing", "backend_records"]

A = ARTIFACTS.c
P = PENDING_UPLOADS.c


def backend_records(db: Database, backend: str) -> BackendRecords:
    """The artifact paths and claims recorded for ``backend``, and the model names."""
    with db.read() as conn:
        paths = conn.execute(select(A.storage_path).where(A.storage_backend == backend)).scalars()
        storage_paths = tuple(paths)
        # A claim past its lease holds nothing: its owner stopped renewing it (killed, or
        # stalled past the lease), and the next upload there would take it over too.
        claimed = tuple(
            conn.execute(
                select(P.storage_path).where(P.storage_backend == backend, P.expires_at > now())
            ).scalars()
        )
        models = tuple(conn.execute(select(MODELS.c.name)).scalars())
    return BackendRecords(storage_paths, claimed, models)


def artifacts_sharing(
    db: Database, backend: str, remote: str, *, excluding: int
) -> list[tuple[int, str]]:
    """Artifact records on ``backend`` whose storage path may overlap ``remote``.

    Candidates only (``(id, storage_path)``): a record whose path mentions ``remote``, and
    every folder artifact (one may hold ``remote``); the caller compares normalised paths.

    Args:
        remote: the remote path of the bytes, without a trailing ``/``.
        excluding: the artifact being deleted.
    """
    with db.read() as conn:
        rows = conn.execute(
            select(A.id, A.storage_path).where(
                A.storage_backend == backend,
                A.id != excluding,
                or_(
                    A.storage_path.contains(remote, autoescape=True),
                    A.storage_path.endswith("/"),
                ),
            )
        )
        return [(row.id, row.storage_path) for row in rows]
