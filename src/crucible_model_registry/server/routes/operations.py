"""Operations: liveness, readiness (schema at head), Prometheus metrics, the integrity check."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crucible_model_registry.backends.sql import SqlBackend
from crucible_model_registry.domain.integrity import IntegrityReport
from crucible_model_registry.errors import RegistryError
from crucible_model_registry.server._openapi import ERROR_SCHEMA, returns, text_response
from crucible_model_registry.server.errors import error_response
from crucible_model_registry.server.routes._common import registry_of, reply

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@dataclass(frozen=True)
class _Status:
    status: str


@router.get("/healthz", responses=returns(_Status))
def healthz() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    responses={
        **returns(_Status),
        503: {
            "description": "Database unreachable or schema behind: run `cmr db upgrade`",
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        },
    },
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is this release's, else 503."""
    from crucible_model_registry.store import schema

    backend = registry_of(request).backend
    try:
        if isinstance(backend, SqlBackend):
            schema.check_schema(backend.engine)
    except RegistryError as exc:
        return error_response(exc, status=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response, responses=text_response("text/plain"))
def metrics(request: Request) -> Response:
    """Prometheus exposition: requests by route and status, latency histograms."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/api/v1/check", responses=returns(IntegrityReport))
def check(request: Request) -> JSONResponse:
    """The integrity report of the database (``cmr db check``); writes nothing."""
    return reply(registry_of(request).check())
