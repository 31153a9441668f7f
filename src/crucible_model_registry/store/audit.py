"""The audit log's table access: append an entry inside the caller's transaction.

Appending in the write's own transaction means an entry exists exactly when its write
committed; a denied attempt is appended on its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from crucible_model_registry.domain.audit import AuditEntry
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now
from crucible_model_registry.store.tables import AUDIT_LOG

__all__ = ["append", "record"]


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
    outcome: str = "ok",
) -> AuditEntry:
    """Append one entry in ``conn``'s transaction and return it."""
    entry = AuditEntry(
        at=now(),
        actor=actor,
        action=action,
        target=target[:512],
        details=dict(details or {}),
        request_id=request_id,
        outcome="denied" if outcome == "denied" else "ok",
    )
    conn.execute(
        insert(AUDIT_LOG).values(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            details=dict(entry.details),
            request_id=entry.request_id,
            outcome=entry.outcome,
        )
    )
    return entry


def record(db: Database, **fields: Any) -> AuditEntry:
    """Append one entry in a transaction of its own (denied attempts, token events)."""
    with db.write() as conn:
        return append(conn, **fields)
