"""Models: create, list, get, update, rename, delete (``/api/v1/models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.server.routes._common import fields_of, registry_of, reply

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get("/models")
def list_models(request: Request) -> JSONResponse:
    """Every model, by name."""
    return reply(registry_of(request).list_models())


@router.post("/models", status_code=201)
def create_model(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """A new model without versions: ``name``, and optionally description, tags, metadata."""
    fields = fields_of(
        body, allowed=("name", "description", "tags", "metadata"), required=("name",)
    )
    return reply(registry_of(request).create_model(**fields), status=201)


@router.post("/models/{name:path}/rename")
def rename_model(request: Request, name: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Give the model the name ``new_name``; the answer is the renamed model."""
    fields = fields_of(body, allowed=("new_name",), required=("new_name",))
    return reply(registry_of(request).rename_model(name, fields["new_name"]))


@router.delete("/models/{name:path}")
def delete_model(request: Request, name: str, force: bool = False) -> JSONResponse:
    """Delete the model and all of it; the answer is the model as it was."""
    registry = registry_of(request)
    record = registry.get_model(name)
    registry.delete_model(name, force=force)
    return reply(record)


@router.patch("/models/{name:path}")
def update_model(request: Request, name: str, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Change the description, tags (replaced) or metadata: only the keys given."""
    fields = fields_of(body, allowed=("description", "tags", "metadata", "metadata_patch"))
    return reply(registry_of(request).update_model(name, **fields))


@router.get("/models/{name:path}")
def get_model(request: Request, name: str) -> JSONResponse:
    """The model called ``name``."""
    return reply(registry_of(request).get_model(name))
