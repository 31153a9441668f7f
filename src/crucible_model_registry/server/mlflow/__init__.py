"""MLflow's model-registry REST API and artifact proxy, answered by the same Registry.

An unmodified ``MlflowClient`` with ``MLFLOW_TRACKING_URI=http://host:port`` (and
``MLFLOW_TRACKING_TOKEN``) works against ``cmr serve``: the routes of
:mod:`.registry_routes` under ``/api/2.0/mlflow/`` and ``/ajax-api/2.0/mlflow/``, the
artifact proxy of :mod:`.artifacts` under ``/api/2.0/mlflow-artifacts/``. They are
sub-applications, so that their errors take MLflow's shape (:mod:`.errors`) while the
server's middleware (request ids, tokens, body limits, metrics) covers them as any route.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.server.mlflow import artifacts
from crucible_model_registry.server.mlflow.errors import (
    ENDPOINT_NOT_FOUND,
    mlflow_error,
    mlflow_error_handler,
)
from crucible_model_registry.server.mlflow.registry_routes import HANDLERS, Handler

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from crucible_model_registry.registry import Registry

__all__ = ["PREFIXES", "mount"]

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
_LISTS = ("order_by", "stages")  # repeated fields: several query parameters of one name


def mount(app: Any, registry: Registry) -> None:
    """Answer MLflow's registry API and artifact proxy in ``app`` (a Starlette app)."""
    api = _registry_app(registry)
    for prefix in PREFIXES:
        app.mount(prefix, api)
    proxy = _artifacts_app(registry)
    for prefix in ARTIFACT_PREFIXES:
        app.mount(prefix, proxy)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if key in _LISTS else values[-1]
    if request.method != "GET":
        body = await request.body()
        if body.strip():
            try:
                doc = json.loads(body)
            except ValueError:
                raise ValidationError.single("body", "is not valid JSON") from None
            if not isinstance(doc, dict):
                raise ValidationError.single("body", "must be a JSON object")
            params.update(doc)
    return params


def _endpoint(
    registry: Registry, handlers: dict[str, Handler]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        handler = handlers[request.method]
        params = await _params(request)
        return JSONResponse(await run_in_threadpool(handler, registry, params))

    return endpoint


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, status = ENDPOINT_NOT_FOUND
    if exc.status_code == 405:
        return mlflow_error(code, 405, f"{request.method} is not allowed on {request.url.path}")
    if exc.status_code != 404:
        return mlflow_error("BAD_REQUEST", exc.status_code, str(exc.detail))
    return mlflow_error(code, status, f"no MLflow endpoint {request.url.path} on this server")


def _registry_app(registry: Registry) -> ASGIApp:
    by_path: dict[str, dict[str, Handler]] = {}
    for (method, path), handler in HANDLERS.items():
        by_path.setdefault(path, {})[method] = handler
    routes = [
        Route("/" + path, _endpoint(registry, handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]
    return Starlette(
        routes=routes,
        exception_handlers={RegistryError: mlflow_error_handler, HTTPException: _not_found},
    )


def _artifacts_app(registry: Registry) -> ASGIApp:
    async def listing(request: Request) -> Response:
        path = request.query_params.get("path")
        return JSONResponse(await run_in_threadpool(artifacts.list_artifacts, registry, path))

    async def one_file(request: Request) -> Response:
        path = request.path_params["path"]
        if request.method == "PUT":
            return await artifacts.upload(registry, path, request)
        return await artifacts.download(registry, path)

    return Starlette(
        routes=[
            Route("/artifacts", listing, methods=["GET"]),
            Route("/artifacts/{path:path}", one_file, methods=["GET", "PUT"]),
        ],
        exception_handlers={RegistryError: mlflow_error_handler, HTTPException: _not_found},
    )
