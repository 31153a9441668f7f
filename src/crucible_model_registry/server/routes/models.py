"""Models: create, list, get, update, rename, delete (``/api/v1/models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.records import Model
from crucible_model_registry.server._openapi import (
    NULLABLE_STRING,
    OBJECT,
    STRING,
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


@router.post(
    "/models",
    status_code=201,
    responses=returns(Model, status=201),
    openapi_extra=json_body(
        {"name": STRING, "description": NULLABLE_STRING, "tags": STRINGS, "metadata": OBJECT},
        required=("name",),
    ),
)
def create_model(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """A new model without versions: ``name``, and optionally description, tags, metadata."""
    fields = fields_of(
        body, allowed=("name", "description", "tags", "metadata"), required=("name",)
    )
    return reply(registry_of(request).create_model(**fields), status=201)


@router.post(
    "/models/{name:path}/rename",
    responses=returns(Model),
    openapi_extra=json_body({"new_name": STRING}, required=("new_name",)),
)
def rename_model(request: Request, name: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Give the model the name ``new_name``; the answer is the renamed model."""
    fields = fields_of(body, allowed=("new_name",), required=("new_name",))
    return reply(registry_of(request).rename_model(name, fields["new_name"]))


@router.delete(
    "/models/{name:path}",
    responses=returns(Model),
    dependencies=[Depends(not_a_subresource)],
)
def delete_model(request: Request, name: str, force: bool = False) -> JSONResponse:
    """Delete the model and all of it; the answer is the model as it was."""
    registry = registry_of(request)
    record = registry.get_model(name)
    registry.delete_model(name, force=force)
    return reply(record)


@router.patch(
    "/models/{name:path}",
    responses=returns(Model),
    dependencies=[Depends(not_a_subresource)],
    openapi_extra=json_body(  # null tags or metadata: unchanged, as in Registry.update_model
        {
            "description": NULLABLE_STRING,
            "tags": {"anyOf": [STRINGS, {"type": "null"}]},
            "metadata": {"anyOf": [OBJECT, {"type": "null"}]},
            "metadata_patch": {"anyOf": [OBJECT, {"type": "null"}]},
        }
    ),
)
def update_model(request: Request, name: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Change the description, tags (replaced) or metadata: only the keys given."""
    fields = fields_of(body, allowed=("description", "tags", "metadata", "metadata_patch"))
    return reply(registry_of(request).update_model(name, **fields))


@router.get(
    "/models/{name:path}",
    responses=returns(Model),
    dependencies=[Depends(not_a_subresource)],
)
def get_model(request: Request, name: str) -> JSONResponse:
    """The model called ``name``."""
    return reply(registry_of(request).get_model(name))
