"""Artifact records: claiming a path for an upload, adding one to a version, reading, deleting.

An upload claims its remote path in ``cmr_pending_uploads`` before it sends a byte and gives
the claim back when the artifact is recorded (same transaction) or the upload fails. Two
uploads racing for one path therefore never write the same bytes: the second is refused at
once.

A claim is a lease (issue 14): it carries its owner's secret token and an expiry that the
owner renews every ``LEASE / 4`` while it works (:func:`keep_claim_alive`). Only the token's
holder gives a claim back or renews it, and a claim is taken over only once its lease has
run out: its owner died or stalled for longer than ``LEASE``. Process ids are shown in
messages but never trusted for liveness, since a process in another PID namespace (a
container) may share the host name. Expiry is judged by the clock of the process looking,
so hosts sharing a database need clocks that agree to well within the lease (NTP does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Insert,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.records import Artifact
from crucible_model_registry.domain.redaction import redact
from crucible_model_registry.domain.specs import ArtifactSpec
from crucible_model_registry.errors import NotFoundError, ValidationError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import artifact_from_row
from crucible_model_registry.store._translate import ConstraintViolationError
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now
from crucible_model_registry.store.tables import ARTIFACTS, BLOB_REFS, PENDING_UPLOADS, VERSIONS

__all__ = [
    "LEASE",
    "UploadClaim",
    "add_artifact",
    "claim_upload",
    "get_artifact",
    "holds_claim",
    "keep_claim_alive",
    "live_claim_problem",
    "new_claim",
    "release_upload",
    "remove_artifact",
    "renew_claim",
]

A = ARTIFACTS.c
P = PENDING_UPLOADS.c

_log = logging.getLogger("crucible_model_registry")

LEASE = timedelta(seconds=60)
"""How long a claim lives without renewal; its owner renews it every quarter of this."""


@dataclass(frozen=True, slots=True)
class UploadClaim:
    """A claimed remote path, with the secret that proves who holds it."""

    backend: str
    remote: str
    token: str
    lease: timedelta = LEASE

    def __repr__(self) -> str:  # the token stays out of logs
        return f"UploadClaim({self.backend!r}, {self.remote!r})"


def claim_upload(
    db: Database,
    version_id: int,
    backend: str,
    remote: str,
    *,
    ref: str,
    lease: timedelta = LEASE,
) -> UploadClaim:
    """Claim ``remote`` on ``backend`` for an upload to version ``version_id``.

    Args:
        remote: the remote path, without a trailing slash (a file and a directory of the
            same name are one path).
        ref: the version's ref, for messages.
        lease: how long the claim lives unless renewed (:func:`keep_claim_alive`).

    Raises:
        ValidationError: the version already has an artifact there, or another upload to
            it is under way.
        NotFoundError: the version no longer exists.
    """
    claim = new_claim(backend, remote, lease=lease)
    for attempt in range(3):
        try:
            with db.write() as conn:
                _refuse_a_live_claim(conn, backend, remote, ref=ref)
                if (
                    conn.execute(select(VERSIONS.c.id).where(VERSIONS.c.id == version_id)).first()
                    is None
                ):
                    raise NotFoundError("version", version_id)
                conn.execute(_claim_row(version_id, claim))
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
            return claim
    raise AssertionError("unreachable")  # pragma: no cover


def release_upload(db: Database, claim: UploadClaim) -> bool:
    """Give back a failed upload's claim, or a deletion's once the bytes are gone.

    Returns:
        Whether the claim was still this owner's (False: it expired and was taken over,
        and the other owner's claim is left alone).
    """
    with db.write() as conn:
        return conn.execute(_delete_claim(claim)).rowcount == 1


def renew_claim(db: Database, claim: UploadClaim) -> bool:
    """Extend the claim's lease; False if it has expired or is no longer this owner's.

    An expired lease is never revived: another process may have taken the path meanwhile.
    """
    at = now()
    with db.write() as conn:
        renewed = conn.execute(
            update(PENDING_UPLOADS)
            .where(_is_mine(claim), P.expires_at > at)
            .values(expires_at=at + claim.lease)
        )
        return renewed.rowcount == 1


def holds_claim(db: Database, claim: UploadClaim) -> bool:
    """Is the claim still this owner's, with its lease running?"""
    with db.read() as conn:
        return (
            conn.execute(select(P.token).where(_is_mine(claim), P.expires_at > now())).first()
            is not None
        )


@contextlib.contextmanager
def keep_claim_alive(db: Database, claim: UploadClaim) -> Iterator[None]:
    """Renew the claim's lease from a background thread while the block runs."""
    stop = threading.Event()

    def renew() -> None:
        every = claim.lease.total_seconds() / 4
        while not stop.wait(every):
            try:
                if not renew_claim(db, claim):
                    _log.warning("the claim on %s in %s was lost", claim.remote, claim.backend)
                    return
            except Exception:  # a failed renewal is retried at the next beat
                _log.exception("could not renew the claim on %s", claim.remote)

    thread = threading.Thread(target=renew, name="cmr-claim-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _is_mine(claim: UploadClaim) -> ColumnElement[bool]:
    return and_(
        P.storage_backend == claim.backend,
        P.storage_path == claim.remote,
        P.token == claim.token,
    )


def _claim_row(version_id: int, claim: UploadClaim) -> Insert:
    at = now()
    return insert(PENDING_UPLOADS).values(
        storage_backend=claim.backend,
        storage_path=claim.remote,
        version_id=version_id,
        host=_HOST,
        pid=os.getpid(),
        started_at=at,
        token=claim.token,
        expires_at=at + claim.lease,
    )


def _delete_claim(claim: UploadClaim) -> Delete:
    return delete(PENDING_UPLOADS).where(_is_mine(claim))


def live_claim_problem(
    conn: Connection,
    *,
    backend: str | None = None,
    remote: str | None = None,
    version_id: int | None = None,
) -> str | None:
    """Describe a live claim on the path (or on any path of the version), removing dead ones.

    Returns:
        None when nothing holds it; else a sentence naming the upload and its lease.
    """
    at = now()
    where = (
        and_(P.storage_backend == backend, P.storage_path == remote)
        if version_id is None
        else P.version_id == version_id
    )
    rows = conn.execute(
        select(P.storage_path, P.host, P.pid, P.started_at, P.expires_at).where(where)
    ).all()
    live = [r for r in rows if r.expires_at > at]
    if len(live) < len(rows):
        # Their owners stopped renewing them: dead or stalled past the lease.
        conn.execute(delete(PENDING_UPLOADS).where(where, P.expires_at <= at))
    if not live:
        return None
    r = live[0]
    return (
        f"another upload to {r.storage_path!r} has been under way since "
        f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC (host {r.host}, process {r.pid}); wait for it "
        f"to finish. If that process is gone, its claim is taken over when its lease runs "
        f"out, at {r.expires_at:%H:%M:%S} UTC at the latest ({LEASE.total_seconds():g} s "
        "after its last renewal)"
    )


def _refuse_a_live_claim(conn: Connection, backend: str, remote: str, *, ref: str) -> None:
    problem = live_claim_problem(conn, backend=backend, remote=remote)
    if problem is not None:
        raise ValidationError.single("path", f"{ref}: {problem}")


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


def add_artifact(
    db: Database,
    version_id: int,
    spec: ArtifactSpec,
    *,
    claim: UploadClaim | None = None,
    by: Attribution,
) -> Artifact:
    """Record an artifact of an existing version, giving back the upload's ``claim``.

    The audit entry (``upload``) is part of the transaction.

    Raises:
        NotFoundError: the version no longer exists (e.g. deleted during the upload).
    """
    with db.write() as conn:
        if claim is not None and conn.execute(_delete_claim(claim)).rowcount != 1:
            # The lease ran out (this process stalled) and another may have taken the path:
            # these bytes are no longer known to be this upload's, so record nothing.
            raise ValidationError.single(
                "path",
                f"the claim on {claim.remote!r} expired before the upload finished (it was "
                f"not renewed for {claim.lease.total_seconds():g} s); upload again",
            )
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
        # The upload's pins went with its claim above; its references take their place in
        # the same transaction, so no moment exists at which gc could take the blobs.
        distinct = {sha256: (size, probe) for sha256, size, probe in spec.blobs}
        if distinct:
            conn.execute(
                insert(BLOB_REFS),
                [
                    {
                        "artifact_id": row.id,
                        "sha256": sha256,
                        "storage_backend": spec.storage_backend,
                        "size_bytes": size,
                        "probe": probe,
                    }
                    for sha256, (size, probe) in distinct.items()
                ],
            )
        record = artifact_from_row(row)
        audit.write(
            conn,
            by,
            "upload",
            audit.version_target(conn, version_id),
            _audit_details(record),
            at=record.created_at,
        )
    return record


def _audit_details(record: Artifact) -> dict[str, Any]:
    return {
        "artifact_id": record.id,
        "type": record.type.value,
        "storage_backend": record.storage_backend,
        # A path registered by reference could be a URL holding a credential.
        "storage_path": redact(record.storage_path),
        "checksum": record.checksum,
        "size_bytes": record.size_bytes,
    }


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


def new_claim(backend: str, remote: str, *, lease: timedelta = LEASE) -> UploadClaim:
    """A claim with a fresh token, for :func:`remove_artifact` to take."""
    return UploadClaim(backend, remote, secrets.token_hex(16), lease)


def remove_artifact(
    db: Database, artifact_id: int, *, claim: UploadClaim | None = None, by: Attribution
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
        conn.execute(delete(BLOB_REFS).where(BLOB_REFS.c.artifact_id == artifact_id))
        conn.execute(delete(ARTIFACTS).where(A.id == artifact_id))
        if claim is not None:
            _refuse_a_live_claim(conn, claim.backend, claim.remote, ref=f"artifact {artifact_id}")
            conn.execute(_claim_row(row.version_id, claim))
        record = artifact_from_row(row)
        target = audit.version_target(conn, record.model_version_id)
        audit.write(conn, by, "delete_artifact", target, _audit_details(record))
    return record
