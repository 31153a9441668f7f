"""Promotion policies: get, set or remove one, and its history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.policy import PolicyChange, PromotionPolicy
from crucible_model_registry.server._openapi import json_body, returns
from crucible_model_registry.server.routes._common import fields_of, registry_of, reply

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["policies"])


@dataclass(frozen=True)
class _Policy:
    policy: PromotionPolicy | None


@router.get("/models/{name:path}/policy/history", responses=returns(list[PolicyChange]))
def policy_history(request: Request, name: str) -> JSONResponse:
    """Every change of the model's promotion policy, oldest first."""
    return reply(registry_of(request).policy_history(name))


@router.get("/models/{name:path}/policy", responses=returns(_Policy))
def get_policy(request: Request, name: str) -> JSONResponse:
    """``{"policy": ...}``: the model's promotion policy, or null."""
    return reply({"policy": registry_of(request).get_promotion_policy(name)})


@router.put(
    "/models/{name:path}/policy",
    responses=returns(_Policy),
    openapi_extra=json_body(
        {"policy": {"anyOf": [{"type": "object"}, {"type": "null"}]}}, required=("policy",)
    ),
)
def set_policy(request: Request, name: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Store ``{"policy": {...}}`` as the model's policy (null removes it)."""
    fields = fields_of(body, allowed=("policy",), required=("policy",))
    registry = registry_of(request)
    registry.set_promotion_policy(name, fields["policy"])
    return reply({"policy": registry.get_promotion_policy(name)})
