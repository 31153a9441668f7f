"""AuditEntry: one line of the append-only audit log (issue 16)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

__all__ = ["AuditEntry", "AuditOutcome"]

AuditOutcome = Literal["ok", "denied"]
"""``ok``: the write happened; ``denied``: an attempt refused by access control."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which target, when, and through which request.

    Attributes:
        at: when (UTC).
        actor: the principal (a token's name at the server; ``CMR_ACTOR`` or the OS user
            in the library).
        action: what was done, e.g. ``register``, ``promote``, ``set_policy``.
        target: what it was done to, e.g. ``resnet@3`` or a model's name.
        details: what the action needs to be understood later (never a secret).
        request_id: the server request's id, or None in the library.
        outcome: ``ok`` or ``denied``.
    """

    at: datetime
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    request_id: str | None = None
    outcome: AuditOutcome = "ok"
