"""Models: list, get, update (``/api/v1/models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.records import Model
from crucible_model_registry.server._openapi import (
    NULLABLE_STRING,
    OBJECT,
    STRINGS,
    json_body,
    returns,
)
from crucible_model_registry.server.routes._common import (
    fields_of,
    not_a_subresource,
    registry_of,
    reply,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models", responses=returns(list[Model]))
def list_models(request: Request) -> JSONResponse:
    """Every model, by name."""
    return reply(registry_of(request).list_models())


@router.patch(
    "/models/{name:path}",
    responses=returns(Model),
    dependencies=[Depends(not_a_subresource)],
    openapi_extra=json_body(  # null tags or metadata: unchanged, as in Registry.update_model
        {
            "description": NULLABLE_STRING,
            "tags": {"anyOf": [STRINGS, {"type": "null"}]},
            "metadata": {"anyOf": [OBJECT, {"type": "null"}]},
        }
    ),
)
def update_model(request: Request, name: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Change the description, tags (replaced) or metadata: only the keys given."""
    fields = fields_of(body, allowed=("description", "tags", "metadata"))
    return reply(registry_of(request).update_model(name, **fields))


@router.get(
    "/models/{name:path}",
    responses=returns(Model),
    dependencies=[Depends(not_a_subresource)],
)
def get_model(request: Request, name: str) -> JSONResponse:
    """The model called ``name``."""
    return reply(registry_of(request).get_model(name))
