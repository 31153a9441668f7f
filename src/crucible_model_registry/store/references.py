"""What the records say about stored bytes: which paths artifacts reference, which paths
uploads claim, and which content-addressed blobs are referenced or pinned.

Read by garbage collection (nothing referenced, claimed or pinned is removed) and by
artifact deletion (bytes another record references are kept). The blob tables
(``cmr_blob_refs``, ``cmr_blob_pins``, migration 0007) are written here and by
``store.artifacts.add_artifact``.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, insert, literal, or_, select

from crucible_model_registry.domain.storage_reports import BackendRecords
from crucible_model_registry.store.artifacts import UploadClaim
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now
from crucible_model_registry.store.tables import (
    ARTIFACTS,
    BLOB_PINS,
    BLOB_REFS,
    MODELS,
    PENDING_UPLOADS,
)

__all__ = [
    "BackendRecords",
    "artifacts_sharing",
    "backend_records",
    "blob_candidates",
    "blob_in_use",
    "pin_blob",
]

A = ARTIFACTS.c
P = PENDING_UPLOADS.c
R = BLOB_REFS.c
B = BLOB_PINS.c
_pin_claim = and_(P.storage_backend == B.storage_backend, P.storage_path == B.storage_path)


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
        referenced = select(R.sha256).where(R.storage_backend == backend)
        pinned = (
            select(B.sha256)
            .select_from(BLOB_PINS.join(PENDING_UPLOADS, _pin_claim))
            .where(B.storage_backend == backend, P.expires_at > now())
        )
        blobs = tuple(conn.execute(referenced.union(pinned)).scalars())
    return BackendRecords(storage_paths, claimed, models, blobs)


def blob_candidates(db: Database, backend: str, size_bytes: int, probe: str) -> bool:
    """Does an artifact on ``backend`` hold a blob of this size and probe (``probe_file``)?

    Uploads hash a file before sending it only then: a file no blob matches cannot be one
    of them, so it goes out in one pass and is hashed on the way.
    """
    with db.read() as conn:
        query = select(literal(1)).where(
            R.storage_backend == backend, R.size_bytes == size_bytes, R.probe == probe
        )
        return conn.execute(query.limit(1)).first() is not None


def pin_blob(db: Database, claim: UploadClaim, sha256: str) -> bool:
    """Pin the blob of ``sha256`` for the upload holding ``claim``, while the claim lives.

    Returns:
        False if the claim has expired or is no longer this owner's (nothing is pinned).
    """
    with db.write() as conn:
        live = conn.execute(
            select(P.token).where(
                P.storage_backend == claim.backend,
                P.storage_path == claim.remote,
                P.token == claim.token,
                P.expires_at > now(),
            )
        ).first()
        if live is None:
            return False
        key = (B.storage_backend == claim.backend) & (B.storage_path == claim.remote)
        if conn.execute(select(B.sha256).where(key, B.sha256 == sha256)).first() is None:
            conn.execute(
                insert(BLOB_PINS).values(
                    storage_backend=claim.backend, storage_path=claim.remote, sha256=sha256
                )
            )
    return True


def blob_in_use(db: Database, backend: str, sha256: str) -> bool:
    """Does an artifact record reference the blob, or a live upload pin it?"""
    with db.read() as conn:
        referenced = exists().where(R.storage_backend == backend, R.sha256 == sha256)
        pinned = (
            select(literal(1))
            .select_from(BLOB_PINS.join(PENDING_UPLOADS, _pin_claim))
            .where(B.storage_backend == backend, B.sha256 == sha256, P.expires_at > now())
            .exists()
        )
        return bool(conn.execute(select(or_(referenced, pinned))).scalar())


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
