"""Artifact records: claiming a path for an upload, adding one to a version, reading, deleting.

An upload claims its remote path in ``cmr_pending_uploads`` before it sends a byte and gives
the claim back when the artifact is recorded (same transaction) or the upload fails. Two
uploads racing for one path therefore never write the same bytes: the second is refused at
once. A claim whose process died without giving it back (killed, power lost) is taken over
when that process is known to be gone (same host, no such pid) or after ``STALE_AFTER``.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import Connection, Delete, Insert, and_, delete, insert, or_, select

from crucible_model_registry.domain.records import Artifact
from crucible_model_registry.domain.specs import ArtifactSpec
from crucible_model_registry.errors import NotFoundError, ValidationError
from crucible_model_registry.store._records import artifact_from_row
from crucible_model_registry.store._translate import ConstraintViolationError
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now
from crucible_model_registry.store.tables import ARTIFACTS, PENDING_UPLOADS, VERSIONS

__all__ = [
    "STALE_AFTER",
    "UploadClaim",
    "add_artifact",
    "claim_upload",
    "get_artifact",
    "release_upload",
    "remove_artifact",
]

A = ARTIFACTS.c
P = PENDING_UPLOADS.c

STALE_AFTER = timedelta(hours=24)
"""A claim this old is taken over from any host: no upload is expected to run that long."""

UploadClaim = tuple[str, str]
"""(backend name, remote path) of a claimed upload."""


def claim_upload(
    db: Database, version_id: int, backend: str, remote: str, *, ref: str
) -> UploadClaim:
    """Claim ``remote`` on ``backend`` for an upload to version ``version_id``.

    Args:
        remote: the remote path, without a trailing slash (a file and a directory of the
            same name are one path).
        ref: the version's ref, for messages.

    Raises:
        ValidationError: the version already has an artifact there, or another upload to
            it is under way.
        NotFoundError: the version no longer exists.
    """
    for attempt in range(3):
        try:
            with db.write() as conn:
                _refuse_a_live_claim(conn, backend, remote, ref=ref)
                if (
                    conn.execute(select(VERSIONS.c.id).where(VERSIONS.c.id == version_id)).first()
                    is None
                ):
                    raise NotFoundError("version", version_id)
                conn.execute(_claim_row(version_id, backend, remote))
                # Only now, after the insert: on PostgreSQL it waited for any transaction
                # that was recording an artifact here and giving its claim back, so this
                # statement sees that artifact (read committed takes a snapshot per statement).
                _refuse_a_stored_artifact(conn, version_id, backend, remote, ref=ref)
        except ConstraintViolationError:
            # Another claim (or a delete of the version) committed first: look again, now
            # that it is visible, to say which it was.
            if attempt == 2:
                raise
        else:
            return (backend, remote)
    raise AssertionError("unreachable")  # pragma: no cover


def release_upload(db: Database, claim: UploadClaim) -> None:
    """Give back a failed upload's claim, or a deletion's once the bytes are gone."""
    with db.write() as conn:
        conn.execute(_delete_claim(claim))


def _claim_row(version_id: int, backend: str, remote: str) -> Insert:
    return insert(PENDING_UPLOADS).values(
        storage_backend=backend,
        storage_path=remote,
        version_id=version_id,
        host=_HOST,
        pid=os.getpid(),
        started_at=now(),
    )


def _delete_claim(claim: UploadClaim) -> Delete:
    backend, remote = claim
    return delete(PENDING_UPLOADS).where(P.storage_backend == backend, P.storage_path == remote)


def _refuse_a_live_claim(conn: Connection, backend: str, remote: str, *, ref: str) -> None:
    claim = conn.execute(
        select(P.host, P.pid, P.started_at).where(
            and_(P.storage_backend == backend, P.storage_path == remote)
        )
    ).first()
    if claim is None:
        return
    host, pid, started_at = claim
    if _abandoned(host, pid, started_at):
        conn.execute(_delete_claim((backend, remote)))
        return
    raise ValidationError.single(
        "path",
        f"another upload to {remote!r} of {ref} has been under way since "
        f"{started_at:%Y-%m-%d %H:%M:%S} UTC (host {host}, process {pid}); wait for it to "
        f"finish. If that process is gone, its claim is taken over once it is known dead "
        f"on its host or {STALE_AFTER.total_seconds() / 3600:g} hours after it started",
    )


def _refuse_a_stored_artifact(
    conn: Connection, version_id: int, backend: str, remote: str, *, ref: str
) -> None:
    # Backends record the remote path as it is (local) or at the end of a URI (s3://, hf://);
    # a directory's ends with a slash.
    forms = (remote, remote + "/")
    stored = conn.execute(
        select(A.id).where(
            A.version_id == version_id,
            A.storage_backend == backend,
            or_(
                *(A.storage_path == form for form in forms),
                *(A.storage_path.endswith("/" + form, autoescape=True) for form in forms),
            ),
        )
    ).first()
    if stored is not None:
        raise ValidationError.single(
            "path", f"{ref} already has an artifact at {remote!r}; delete it first"
        )


_HOST = socket.gethostname()


def _abandoned(host: str, pid: int, started_at: datetime) -> bool:
    if now() - started_at >= STALE_AFTER:
        return True
    if host != _HOST or pid == os.getpid() or os.name != "posix":
        return False  # another machine's process, or this one's (another thread's upload)
    try:
        os.kill(pid, 0)  # signal 0: is there such a process? (sends nothing)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return False


def add_artifact(
    db: Database, version_id: int, spec: ArtifactSpec, *, claim: UploadClaim | None = None
) -> Artifact:
    """Record an artifact of an existing version, giving back the upload's ``claim``.

    Raises:
        NotFoundError: the version no longer exists (e.g. deleted during the upload).
    """
    with db.write() as conn:
        if claim is not None:
            conn.execute(_delete_claim(claim))
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


def remove_artifact(
    db: Database, artifact_id: int, *, claim: UploadClaim | None = None
) -> Artifact:
    """Delete the record and return it as it was; with ``claim``, hold its path meanwhile.

    The caller deletes the bytes after this returns, then gives the claim back: until then
    no upload can start writing to the path whose bytes are about to be deleted.

    Raises:
        NotFoundError: there is none.
        ValidationError: an upload to ``claim``'s path is under way.
    """
    with db.write() as conn:
        row = conn.execute(select(ARTIFACTS).where(A.id == artifact_id)).first()
        if row is None:
            raise NotFoundError("artifact", artifact_id)
        conn.execute(delete(ARTIFACTS).where(A.id == artifact_id))
        if claim is not None:
            backend, remote = claim
            _refuse_a_live_claim(conn, backend, remote, ref=f"artifact {artifact_id}")
            conn.execute(_claim_row(row.version_id, backend, remote))
    return artifact_from_row(row)
