"""The audit log's values: an entry (AuditEntry), who wrote (Attribution), its filters."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

__all__ = ["MAX_AUDIT_LIMIT", "Attribution", "AuditEntry", "AuditOutcome"]

AuditOutcome = Literal["ok", "denied"]
"""``ok``: the write happened; ``denied``: an attempt refused by access control."""

MAX_AUDIT_LIMIT = 10_000
"""The most entries one ``audit_log`` call returns."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which target, when, and through which request.

    Attributes:
        at: when (UTC).
        actor: the principal (a token's name at the server; ``CMR_ACTOR`` or the OS user
            in the library).
        action: what was done, e.g. ``register``, ``promote``, ``set_promotion_policy``.
        target: what it was done to, e.g. ``resnet@3`` or a model's name.
        details: what the action needs to be understood later (never a secret).
        request_id: the server request's id, or None in the library.
        outcome: ``ok`` or ``denied``.
        id: the entry's place in the log (ascending in the order entries were written).
    """

    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None = None
    outcome: AuditOutcome = "ok"
    id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Attribution:
    """Who makes a write and through which server request: what its audit entry records.

    ``Registry`` builds one per write from ``acting_as``/``CMR_ACTOR`` and the server's
    request context and hands it to the backend, which appends the entry in the write's
    own transaction. A remote backend sends neither field: the server fills in its own.
    """

    actor: str
    request_id: str | None = None
