"""create_app: the ASGI application over one Registry, its middleware and its error handlers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crucible_model_registry import telemetry
from crucible_model_registry.backends.http import HttpBackend
from crucible_model_registry.errors import (
    ConfigurationError,
    NotFoundError,
    RegistryError,
    ValidationError,
)
from crucible_model_registry.server._edge import Edge, Metrics
from crucible_model_registry.server._openapi import document
from crucible_model_registry.server.auth import Authenticator
from crucible_model_registry.server.errors import error_response, registry_error_handler
from crucible_model_registry.server.routes._common import RouteTable, allowed_methods
from crucible_model_registry.server.ui import install_ui

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_THREADS", "app_from_environment", "create_app"]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest JSON request body (artifact uploads stream and have no limit)."""

DEFAULT_THREADS = 16
"""Sync handlers run in a pool of this many threads; the SQL pool gets as many connections."""

_log = logging.getLogger("crucible_model_registry.server")


def create_app(
    registry: Registry | None = None,
    *,
    auth: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    threads: int = DEFAULT_THREADS,
    auth_cache_seconds: float = 5.0,
    max_failed_auth: int = 20,
) -> Any:
    """The registry's ASGI app: REST under ``/api/v1``, health and metrics, the web UI at ``/``.

    MLflow's model-registry API answers under ``/api/2.0/mlflow/`` and its artifact proxy
    under ``/api/2.0/mlflow-artifacts/`` (``server.mlflow``), over the same registry.

    Args:
        registry: the registry to serve; None: the one the ``CMR_*`` settings describe
            (its SQL pool sized to ``threads``). It must not be a remote registry.
        auth: require a token (``Authorization: Bearer``, or the UI's ``cmr_session``
            cookie) on every path but the probes, ``/metrics`` and the API docs; the
            token's principal is the actor and its role and grants apply (API.md §12).
            Without it (``cmr serve --no-auth``, loopback only) every request has every
            right and the actor is the ``X-CMR-Actor`` header a client sends, else the
            server's.
        auth_cache_seconds: how long a token's lookup is reused: a revoked token works
            for at most this long in each server process.
        max_failed_auth: failed authentications a client address may make per minute
            (per process) before it gets 429.
        max_body_bytes: the largest request body except streaming artifact uploads (413).
        threads: the size of the thread pool sync handlers run in.

    Returns:
        A FastAPI (Starlette) application; mount it in a host's ASGI app or serve it.
    """
    from crucible_model_registry.server.routes import (
        aliases,
        artifacts,
        audit,
        lineage,
        models,
        moving,
        operations,
        policies,
        query,
        tokens,
        versions,
    )

    if registry is None:
        registry = _registry_from_settings(threads)
    elif isinstance(registry.backend, HttpBackend):
        raise ConfigurationError("serve a registry on a database, not a remote registry")
    metrics = Metrics()
    handler_id = f"cmr-server-metrics-{id(metrics)}"

    async def startup() -> None:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        telemetry.attach(handler_id, telemetry.EVENTS, metrics.count_operation)

    def shutdown() -> None:
        telemetry.detach(handler_id)
        registry.close()

    app = FastAPI(
        title="crucible-model-registry",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    authenticator = (
        Authenticator(registry, cache_seconds=auth_cache_seconds, max_failures=max_failed_auth)
        if auth
        else None
    )
    app.state.registry = registry
    app.state.auth = auth
    app.state.authenticator = authenticator
    app.state.metrics = metrics
    app.add_exception_handler(RegistryError, registry_error_handler)
    app.add_exception_handler(RequestValidationError, _request_validation_handler)
    app.add_exception_handler(HTTPException, _http_exception_handler)
    # Specific paths first: a model name or a ref may hold '/', so /models/{name:path}
    # and /versions/{version:path} come last.
    resources = (
        lineage,
        artifacts,
        aliases,
        policies,
        query,
        tokens,
        audit,
        moving,
        models,
        versions,
    )
    routers = [m.router for m in resources]
    routers.append(operations.router)
    for router in routers:
        # The routes themselves, not include_router's wrapper: FastAPI matches an included
        # router's routes twice per request, a fifth of a fast request's CPU time.
        app.router.routes.extend(router.routes)
    app.state.route_table = RouteTable(routers)
    from crucible_model_registry.server import mlflow

    mlflow.mount(app, registry)
    install_ui(app)  # last: its /models/{name:path} and /versions/{ref:path} match widely
    app.add_middleware(
        Edge, metrics=metrics, max_body_bytes=max_body_bytes, authenticator=authenticator
    )
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
    return app


def app_from_environment() -> Any:
    """The app ``cmr serve`` runs in each worker: settings from ``CMR_*``, auth from its flag."""
    import os

    return create_app(
        auth=os.environ.get("CMR_SERVE_AUTH", "1") != "0",
        auth_cache_seconds=float(os.environ.get("CMR_AUTH_CACHE_SECONDS", "5")),
        max_failed_auth=int(os.environ.get("CMR_AUTH_MAX_FAILURES", "20")),
    )


def _registry_from_settings(threads: int) -> Registry:
    from crucible_model_registry.backends.sql import SqlBackend
    from crucible_model_registry.registry import Registry
    from crucible_model_registry.settings import load_settings

    settings = load_settings()
    if settings.server_url:
        raise ConfigurationError(
            "the server serves a database, not another server: unset CMR_SERVER_URL"
        )
    url = settings.resolved_database_url
    options: dict[str, Any] = {}
    if not url.startswith("sqlite"):
        # One connection per handler thread, a few spare: N workers hold N pools of this.
        options = {"pool_size": threads, "max_overflow": 4, "pool_timeout": 10}
    if settings.is_embedded:
        settings.home.mkdir(parents=True, exist_ok=True)
    backend = SqlBackend.from_url(url, auto_migrate=settings.is_embedded, **options)
    registry = Registry(backend=backend, settings=settings)
    if settings.is_embedded:
        registry.migrate()  # the embedded default migrates itself (API.md §1), so /readyz is true
    return registry


async def _request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems: dict[str, list[str]] = {}
    malformed = False
    for item in exc.errors():
        malformed = malformed or item.get("type") == "json_invalid"
        loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or str((item.get("loc") or ("body",))[0])
        problems.setdefault(field, []).append(str(item.get("msg", "invalid")))
    if malformed:
        return error_response(ValidationError.single("body", "is not valid JSON"), status=400)
    return error_response(ValidationError(problems or {"request": ["is invalid"]}), status=422)


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(
            NotFoundError("route", request.url.path, hint="see /api/v1/openapi.json"), status=404
        )
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path only.
        allowed = ", ".join(allowed_methods(request.app, request.scope["path"]))
        response = error_response(
            ValidationError.single(
                "method", f"{request.method} is not allowed here; allowed: {allowed}"
            ),
            status=405,
        )
        if allowed:
            response.headers["Allow"] = allowed
        return response
    return error_response(
        RegistryError(str(exc.detail))
        if exc.status_code >= 500
        else ValidationError.single("request", str(exc.detail)),
        status=exc.status_code,
    )
