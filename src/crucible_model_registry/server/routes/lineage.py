"""Lineage: add an edge, ancestors, descendants, the graph (json, dot, mermaid), cycle checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Body
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from crucible_model_registry.domain.lineage import LineageGraph, LineageHit
from crucible_model_registry.domain.records import LineageEdge
from crucible_model_registry.server._openapi import OBJECT, REF, STRING, json_body, returns
from crucible_model_registry.server.routes._common import fields_of, ref, registry_of, reply

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["lineage"])


@dataclass(frozen=True)
class _CycleAnswer:
    would_create_cycle: bool


_GRAPH = returns(LineageGraph)
_GRAPH[200]["content"]["text/vnd.graphviz"] = {"schema": {"type": "string"}}
_GRAPH[200]["content"]["text/plain"] = {"schema": {"type": "string"}}


@router.post(
    "/lineage/edges",
    status_code=201,
    responses=returns(LineageEdge, status=201),
    openapi_extra=json_body(
        {"parent": REF, "child": REF, "relationship": STRING, "metadata": OBJECT},
        required=("parent", "child"),
    ),
)
def add_edge(request: Request, body: Any = Body(...)) -> JSONResponse:  # noqa: B008
    """Record ``parent -> child`` (cycle-checked in the same transaction)."""
    fields = fields_of(
        body, allowed=("parent", "child", "relationship", "metadata"), required=("parent", "child")
    )
    edge = registry_of(request).add_lineage(
        ref(str(fields["parent"]), field="parent"),
        ref(str(fields["child"]), field="child"),
        **{k: v for k, v in fields.items() if k in ("relationship", "metadata")},
    )
    return reply(edge, status=201)


@router.get("/lineage/would-create-cycle", responses=returns(_CycleAnswer))
def would_create_cycle(request: Request, parent: str, child: str) -> JSONResponse:
    """``{"would_create_cycle": bool}`` for an edge ``parent -> child``."""
    answer = registry_of(request).would_create_cycle(
        ref(parent, field="parent"), ref(child, field="child")
    )
    return reply({"would_create_cycle": answer})


@router.get("/versions/{version:path}/ancestors", responses=returns(list[LineageHit]))
def ancestors(request: Request, version: str, max_depth: int | None = None) -> JSONResponse:
    """The versions it was made from, nearest first, with distance and relationship."""
    hits = registry_of(request).get_ancestors(ref(version), max_depth, with_distance=True)
    return reply(hits)


@router.get("/versions/{version:path}/descendants", responses=returns(list[LineageHit]))
def descendants(request: Request, version: str, max_depth: int | None = None) -> JSONResponse:
    """The versions made from it, nearest first, with distance and relationship."""
    hits = registry_of(request).get_descendants(ref(version), max_depth, with_distance=True)
    return reply(hits)


@router.get("/versions/{version:path}/lineage", responses=_GRAPH)
def lineage(
    request: Request,
    version: str,
    direction: Literal["up", "down", "both"] = "both",
    max_depth: int | None = None,
    format: Literal["json", "dot", "mermaid"] = "json",
) -> Response:
    """The version with its ancestors and/or descendants and their edges."""
    graph = registry_of(request).get_lineage(ref(version), direction=direction, max_depth=max_depth)
    if format == "dot":
        return PlainTextResponse(graph.to_dot(), media_type="text/vnd.graphviz")
    if format == "mermaid":
        return PlainTextResponse(graph.to_mermaid())
    return reply(graph)
