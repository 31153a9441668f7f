"""Aliases: point one at a version, delete it, and its history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crucible_model_registry.domain.records import AliasChange, ModelVersion
from crucible_model_registry.server._openapi import NULLABLE_STRING, REF, STRING, json_body, returns
from crucible_model_registry.server.routes._common import fields_of, ref, registry_of, reply

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["aliases"])


@router.post(
    "/aliases",
    responses=returns(ModelVersion),
    openapi_extra=json_body(
        {"version": REF, "alias": STRING, "reason": NULLABLE_STRING},
        required=("version", "alias"),
    ),
)
def set_alias(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Point ``alias`` of the version's model at ``version``; the answer is the version."""
    fields = fields_of(body, allowed=("version", "alias", "reason"), required=("version", "alias"))
    return reply(
        registry_of(request).set_alias(
            ref(str(fields["version"])), fields["alias"], reason=fields.get("reason")
        )
    )


@router.get("/models/{name:path}/aliases/history", responses=returns(list[AliasChange]))
def alias_history(request: Request, name: str) -> JSONResponse:
    """Every alias move and deletion of the model, oldest first."""
    return reply(registry_of(request).alias_history(name))


@router.delete(
    "/models/{name:path}/aliases/{alias}",
    status_code=204,
    responses={204: {"description": "Removed"}},
)
def delete_alias(request: Request, name: str, alias: str, reason: str | None = None) -> Response:
    """Remove an alias of the model."""
    registry_of(request).delete_alias(name, alias, reason=reason)
    return Response(status_code=204)
