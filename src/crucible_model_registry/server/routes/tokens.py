"""API tokens: create one (its secret is in this answer only), list them, revoke one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crucible_model_registry.server.routes._common import fields_of, registry_of, reply

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tokens"])


@router.post("/tokens", status_code=201)
def create_token(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """``{"name", "role", "models"?, "expires_in"?}`` -> ``{"name", "token", "role", ...}``.

    ``expires_in`` is seconds or a duration such as ``"90d"``; the token is shown only here.
    """
    fields = fields_of(
        body, allowed=("name", "role", "models", "expires_in"), required=("name", "role")
    )
    created = registry_of(request).create_token(
        fields["name"],
        role=fields["role"],
        models=fields.get("models"),
        expires_in=fields.get("expires_in"),
    )
    return reply(created, status=201)


@router.get("/tokens")
def list_tokens(request: Request) -> JSONResponse:
    """Every token, by name, without secrets."""
    return reply(registry_of(request).list_tokens())


@router.delete("/tokens/{name}", status_code=204)
def revoke_token(request: Request, name: str) -> Response:
    """Revoke (delete) the token; it stops working within the server's cache window."""
    registry_of(request).revoke_token(name)
    return Response(status_code=204)
