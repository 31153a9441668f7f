"""The audit log's table: append an entry inside the caller's transaction, and read it.

Appending in the write's own transaction means an entry exists exactly when its write
committed; a denied attempt is appended on its own. Nothing here updates or deletes an
entry: the log is append-only (import adds entries it has not seen, see exchange_import).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from crucible_model_registry.domain.audit import Attribution, AuditEntry
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.tables import AUDIT_LOG, MODELS, VERSIONS

__all__ = ["append", "entries", "record", "version_target", "write"]

L = AUDIT_LOG.c

_INSERT = insert(AUDIT_LOG).returning(L.id)
_APPEND = insert(AUDIT_LOG)  # built once: SQLAlchemy reuses its compiled form on every write
_VERSION_TARGET = (
    select(MODELS.c.name, VERSIONS.c.version)
    .join_from(VERSIONS, MODELS, MODELS.c.id == VERSIONS.c.model_id)
    .where(VERSIONS.c.id == bindparam("id"))
)


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
    outcome: str = "ok",
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in ``conn``'s transaction and return it.

    Args:
        at: the write's own time stamp (default: now), so the entry and the rows it
            describes carry the same time.
    """
    entry = AuditEntry(
        at=at or datetime.now(UTC),
        actor=actor,
        action=action,
        target=target[:512],
        details=dict(details or {}),
        request_id=request_id,
        outcome="denied" if outcome == "denied" else "ok",
    )
    entry_id = conn.execute(
        _INSERT,
        {
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "details": entry.details,
            "request_id": entry.request_id,
            "outcome": entry.outcome,
        },
    ).scalar_one()
    return dataclasses.replace(entry, id=int(entry_id))


def write(
    conn: Connection,
    by: Attribution,
    action: str,
    target: str,
    details: dict[str, Any],
    *,
    at: datetime | None = None,
) -> None:
    """Append the entry of a write made by ``by`` (what every store write calls)."""
    conn.execute(
        _APPEND,
        {
            "at": at or datetime.now(UTC),
            "actor": by.actor,
            "action": action,
            "target": target[:512],
            "details": details,
            "request_id": by.request_id,
            "outcome": "ok",
        },
    )


def record(db: Database, **fields: Any) -> AuditEntry:
    """Append one entry in a transaction of its own (denied attempts, token events)."""
    with db.write() as conn:
        return append(conn, **fields)


def version_target(conn: Connection, version_id: int) -> str:
    """``model@version`` of a version, the target of the writes to it."""
    row = conn.execute(_VERSION_TARGET, {"id": version_id}).first()
    return f"version {version_id}" if row is None else f"{row[0]}@{row[1]}"


def entries(
    db: Database,
    *,
    since: datetime | None,
    actor: str | None,
    action: str | None,
    limit: int,
) -> list[AuditEntry]:
    """The entries matching the filters, newest first, at most ``limit``."""
    query = select(AUDIT_LOG)
    if since is not None:
        query = query.where(L.at >= since)
    if actor is not None:
        query = query.where(L.actor == actor)
    if action is not None:
        query = query.where(L.action == action)
    # Newest first by time (imported entries keep theirs), ids breaking ties.
    query = query.order_by(L.at.desc(), L.id.desc()).limit(limit)
    with db.read() as conn:
        return [
            AuditEntry(
                at=r.at,
                actor=r.actor,
                action=r.action,
                target=r.target,
                details=dict(r.details or {}),
                request_id=r.request_id,
                outcome="denied" if r.outcome == "denied" else "ok",
                id=int(r.id),
            )
            for r in conn.execute(query)
        ]
