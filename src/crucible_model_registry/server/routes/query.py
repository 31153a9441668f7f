"""Queries: a filter map or the JSON form of the whole DSL; lists, counts, first, keyset pages.

A body holds ``filters`` (the keys of ``cmr.query``) or ``query`` (``QuerySpec.to_json()``:
``all``/``any``/``not``, lineage predicates, ``order``, ``limit``, ``offset``), never both.
Every key is read or refused: nothing is silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse

from crucible_model_registry.domain.query_spec import Page, QuerySpec, spec_of
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.query import Query
from crucible_model_registry.server._openapi import NULLABLE_STRING, OBJECT, json_body, returns
from crucible_model_registry.server.routes._common import fields_of, registry_of, reply
from crucible_model_registry.wire import from_json

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])


@dataclass(frozen=True)
class _Count:
    count: int


_BODY = json_body({"filters": OBJECT, "query": OBJECT})
"""``filters`` (the keys of ``cmr.query``) or ``query`` (``QuerySpec.to_json()``)."""


def _query(
    request: Request, body: object, *, extra: tuple[str, ...] = ()
) -> tuple[Query, dict[str, Any]]:
    fields = fields_of(body, allowed=("filters", "query", *extra))
    if "filters" in fields and "query" in fields:
        raise ValidationError.single("body", "give 'filters' or 'query', not both")
    if "query" in fields:
        spec = from_json(QuerySpec, fields["query"], field="query")
    else:
        filters = fields.get("filters")
        if filters is not None and not isinstance(filters, dict):
            raise ValidationError.single("filters", "must be a JSON object")
        spec = spec_of(filters)
    return Query(registry_of(request), spec=spec), fields


@router.post("/query", responses=returns(list[ModelVersion]), openapi_extra=_BODY)
def find(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """The matching versions, in the query's order, within its limit and offset."""
    query, _ = _query(request, body)
    return reply(query.execute())


@router.post("/query/count", responses=returns(_Count), openapi_extra=_BODY)
def count(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """``{"count": n}``: how many versions match."""
    query, _ = _query(request, body)
    return reply({"count": query.count()})


@router.post("/query/first", responses=returns(ModelVersion | None), openapi_extra=_BODY)
def first(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """The first matching version, or null."""
    query, _ = _query(request, body)
    return reply(query.first())


@router.post(
    "/query/page",
    responses=returns(Page),
    openapi_extra=json_body(
        {
            "filters": OBJECT,
            "query": OBJECT,
            "size": {"type": "integer", "minimum": 1},
            "cursor": NULLABLE_STRING,
        },
        required=("size",),
    ),
)
def page(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """One keyset page: ``{"items", "next_cursor"}``; pass ``size`` and the last ``cursor``."""
    query, fields = _query(request, body, extra=("size", "cursor"))
    if "size" not in fields:
        raise ValidationError.single("size", "is required")
    return reply(query.page(fields["size"], fields.get("cursor")))
