"""The audit log: its entries, newest first, filtered by time, actor and action."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.audit import AuditEntry
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.server._openapi import returns
from crucible_model_registry.server.routes._common import registry_of, reply

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit", responses=returns(list[AuditEntry]))
def audit_log(
    request: Request,
    since: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> JSONResponse:
    """``Registry.audit_log``: a list of entries (``since``: ISO 8601 with an offset)."""
    moment = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise ValidationError.single(
                "since", "must be an ISO 8601 time with an offset"
            ) from None
    return reply(
        registry_of(request).audit_log(since=moment, actor=actor, action=action, limit=limit)
    )
