"""What the OpenAPI document says a route answers: record schemas, errors, non-JSON content.

The routes answer ``wire.to_json`` forms, not pydantic models, so FastAPI cannot see their
shapes. :func:`returns` declares a route's success answer from the record type it returns,
and :func:`document` completes FastAPI's document: the records as component schemas
derived from their dataclass fields (the same fields ``to_json`` writes), and every error
status a route can answer with the one error shape of ``server/errors.py`` (FastAPI's own
``HTTPValidationError`` is not what this server sends). The property-based fuzz in
``tests/server/test_openapi_fuzz.py`` holds every answer to these schemas.
"""

from __future__ import annotations

import dataclasses
import enum
import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from crucible_model_registry.domain.policy import PromotionPolicy

__all__ = ["ERROR_SCHEMA", "document", "json_body", "json_schema", "returns", "text_response"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "details"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "description": "the exception class's name"},
                "message": {"type": "string"},
                "details": {"type": "object", "description": "the error's attributes"},
            },
        }
    },
}
"""``{"error": {"type", "message", "details"}}``: every error answer of the server."""

_ERROR_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Authentication required or failed",
    403: "Permission or promotion denied",
    404: "Not found (a model, version, artifact or route)",
    409: "Conflict: duplicate, lineage cycle or constraint",
    413: "Request body larger than the server's limit",
    422: "Invalid input (ValidationError names each field)",
    502: "Artifact storage failed or returned bytes that do not match their checksum",
    503: "Database unreachable or its schema not at this release's revision",
}
_ANY_ROUTE = (400, 401, 403, 404, 413, 422, 503)
_WRITES = frozenset({"post", "put", "patch", "delete"})

_components: dict[str, dict[str, Any]] = {}


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON schema of ``kind``'s wire form; dataclasses become component references."""
    if kind is Any:
        return {}
    if kind is type(None):
        return {"type": "null"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if kind in simple:
        return {"type": simple[kind]}
    if kind is datetime:
        return {"type": "string", "format": "date-time"}
    if kind is PromotionPolicy:
        return {"type": "object", "description": "a promotion policy (API.md §6)"}
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (list, tuple):
        return {"type": "array", "items": json_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1])}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return {"type": "string", "enum": [member.value for member in kind]}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        name = kind.__name__.lstrip("_")
        if name not in _components:
            _components[name] = {}  # placeholder first: records refer to each other
            hints = get_type_hints(kind)
            fields = [f.name for f in dataclasses.fields(kind)]
            _components[name] = {
                "type": "object",
                "required": fields,
                "additionalProperties": False,
                "properties": {f: json_schema(hints[f]) for f in fields},
            }
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(f"no JSON schema for {kind!r}")


def returns(kind: Any, *, status: int = 200, description: str = "Success") -> dict[int | str, Any]:
    """A route's ``responses=``: a JSON answer of ``kind`` (a record type, list, ``X | None``)."""
    schema = json_schema(kind)
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def text_response(
    *media_types: str, status: int = 200, description: str = "Success"
) -> dict[int | str, Any]:
    """A route's ``responses=``: a non-JSON answer in one of ``media_types``."""
    content = {media: {"schema": {"type": "string"}} for media in media_types}
    return {status: {"description": description, "content": content}}


STRING = {"type": "string"}
NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}
STRINGS = {"type": "array", "items": {"type": "string"}}
OBJECT = {"type": "object"}
NUMBERS = {"type": "object", "additionalProperties": {"type": "number"}}
REF = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
"""A version reference: an id, ``model@version``, ``model@stage``, ``model@alias``."""


def json_body(
    properties: dict[str, dict[str, Any]], *, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A route's ``openapi_extra``: the JSON object its body must be (no other keys)."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


def document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document with the record schemas and the error answers declared."""
    from fastapi.openapi.utils import get_openapi

    if app.openapi_schema:
        return dict(app.openapi_schema)
    spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(_components)
    schemas["Error"] = ERROR_SCHEMA
    if not schemas:
        del spec["components"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if not path.startswith("/api/v1"):
                continue
            statuses = set(_ANY_ROUTE)
            if method in _WRITES:
                statuses.add(409)
            if "/artifacts" in path or path.endswith("/gc"):
                statuses.add(502)
            for status in sorted(statuses):
                responses[str(status)] = {
                    "description": _ERROR_DESCRIPTIONS[status],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
    app.openapi_schema = spec
    return spec
