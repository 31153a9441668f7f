"""What every request passes through first: request id, authentication, body limit, metrics,
access log.

A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``), so the principal's and
the request id's context variables are set in the task that runs the route and reach its
thread-pool call. With access control on, every path but the open probes and the API docs
needs a token (``server/auth.py``), and the ``X-CMR-Actor`` header is ignored: the actor
is the token's principal. With ``--no-auth`` (loopback only) that header names the actor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from crucible_model_registry._context import acting_as, as_principal, handling_request
from crucible_model_registry.domain.access import TOKEN_PREFIX, Principal, contains_token
from crucible_model_registry.errors import AuthenticationError, RegistryError, ValidationError
from crucible_model_registry.server.auth import Authenticator, credentials_from_headers
from crucible_model_registry.server.errors import status_of
from crucible_model_registry.server.mlflow.errors import is_mlflow_path, mlflow_error_body
from crucible_model_registry.wire import error_to_json

__all__ = ["ACTOR_HEADER", "OPEN_PATHS", "REQUEST_ID_HEADER", "Edge", "Metrics"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
ACTOR_HEADER = "x-cmr-actor"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Uploads stream: no body limit (ours, and MLflow's artifact proxy).
_UPLOAD_PATH = re.compile(
    r"/api/v1/versions/.+/artifacts/[^/]+|/(?:ajax-)?api/2\.0/mlflow-artifacts/artifacts/.+"
)
_IMPORT_PATH = "/api/v1/import/bundles"  # spooled to disk: no body limit either
_access = logging.getLogger("crucible_model_registry.server.access")

OPEN_PATHS: set[str] = {"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"}
"""Paths served without a token: probes, metrics (no model data) and the API's docs. A UI
adds its login page here."""
_TOKEN_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key", "cmr_token"})


class Metrics:
    """Prometheus counters and latency histograms of one app (multiprocess-aware)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cmr_http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cmr_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.operations = Counter(
            "cmr_registry_operations_total",
            "Registry operations (register, promote, upload, download) by outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )

    def count_operation(
        self, event: tuple[str, ...], measurements: dict[str, float], metadata: dict[str, object]
    ) -> None:
        """A telemetry handler: one more ``event`` with its outcome."""
        self.operations.labels(event[1], str(metadata.get("outcome", "ok"))).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text (all workers' when ``PROMETHEUS_MULTIPROC_DIR`` is set)."""
        import os

        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Edge:
    """The outermost middleware of the app.

    Args:
        max_body_bytes: the largest request body accepted, except on streaming artifact
            uploads (``PUT .../artifacts/...``) and imports (``POST /import/bundles``),
            which spool to disk; larger ones get 413 before any handler runs.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get(REQUEST_ID_HEADER, "")
        request_id = given_id if _REQUEST_ID.fullmatch(given_id) else uuid.uuid4().hex
        started = time.perf_counter()
        status = [500]
        method = scope["method"]
        is_upload = (method == "PUT" and _UPLOAD_PATH.fullmatch(scope["path"]) is not None) or (
            method == "POST" and scope["path"] == _IMPORT_PATH
        )

        exceeded = [False]  # the body outgrew the limit: the app's answer is replaced by 413

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        async def send_unless_exceeded(message: Message) -> None:
            if not exceeded[0]:
                await send_with_id(message)

        counted = [0]

        async def receive_counted() -> Message:
            if exceeded[0]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request" and not is_upload:
                counted[0] += len(message.get("body", b""))
                if counted[0] > self.max_body_bytes:
                    # Look like a client that went away: the handler never sees a body,
                    # and nothing is written.
                    exceeded[0] = True
                    return {"type": "http.disconnect"}
            return message

        declared = headers.get("content-length", "")
        exceeded[0] = not is_upload and declared.isdigit() and int(declared) > self.max_body_bytes
        principal, refusal = await self._authenticate(scope, headers, request_id)
        try:
            if refusal is not None:
                error, code, extra = refusal
                if code == 401 and _wants_login_page(scope, headers):
                    await _send_login_redirect(send_with_id, scope)
                    return
                await _send_error(send_with_id, error, code, extra, path=scope["path"])
                return
            try:
                if not exceeded[0]:
                    with handling_request(request_id), self._acting(principal, headers):
                        await self.app(scope, receive_counted, send_unless_exceeded)
            except Exception:
                if not exceeded[0]:
                    raise
            if exceeded[0]:
                error = ValidationError.single(
                    "body",
                    f"the request body exceeds the server's limit of {self.max_body_bytes} bytes",
                )
                await _send_error(send_with_id, error, 413, path=scope["path"])
        except RegistryError as exc:  # a bad actor header
            await _send_error(send_with_id, exc, status_of(exc), path=scope["path"])
        finally:
            self._record(scope, status[0], time.perf_counter() - started, request_id)

    def _acting(
        self, principal: Principal | None, headers: dict[str, str]
    ) -> contextlib.AbstractContextManager[object]:
        if principal is not None:
            return as_principal(principal)
        given = headers.get(ACTOR_HEADER) if self.authenticator is None else None
        actor = None if given is None else unquote(given, errors="replace")
        return acting_as(actor) if actor else contextlib.nullcontext()

    async def _authenticate(
        self, scope: Scope, headers: dict[str, str], request_id: str
    ) -> tuple[Principal | None, tuple[RegistryError, int, list[tuple[bytes, bytes]]] | None]:
        """The request's principal, or the error to answer instead (and its status)."""
        import anyio.to_thread

        auth = self.authenticator
        if auth is None or scope["path"] in OPEN_PATHS:
            return None, None
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        wait = auth.retry_after(address)
        if wait is not None:
            limited = AuthenticationError(
                f"too many failed authentications from this address; retry in {wait} s"
            )
            return None, (limited, 429, [(b"retry-after", str(wait).encode())])
        challenge = [(b"www-authenticate", b'Bearer realm="crucible-model-registry"')]
        query = scope.get("query_string", b"").decode("latin-1")
        if query and _token_in_query(query):
            auth.failed(address)
            error = ValidationError.single(
                "query",
                "a token may not be sent in a URL (URLs end up in logs and histories): "
                "send it as 'Authorization: Bearer <token>'",
            )
            await _audit_quietly(auth, address, "token in the query string", request_id)
            return None, (error, 400, [])
        try:
            token = credentials_from_headers(headers)
            principal = None if token is None else auth.cached(token)
            if principal is None:
                if token is None:
                    raise await anyio.to_thread.run_sync(auth.missing)
                principal = await anyio.to_thread.run_sync(auth.authenticate, token)
        except AuthenticationError as exc:
            auth.failed(address)
            await _audit_quietly(auth, address, str(exc), request_id)
            return None, (exc, 401, challenge)
        except RegistryError as exc:  # the database is not ready or not reachable
            return None, (exc, status_of(exc), [])
        if auth.needs_touch(principal):
            await anyio.to_thread.run_sync(auth.touch, principal)
        return principal, None

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        method = scope["method"]
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        if scope["path"].startswith("/api/v1/") and not template.startswith("/api/v1"):
            template = "/api/v1" + template
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.latency.labels(method, template).observe(elapsed)
        # The path, never the query string or headers: no token or secret is logged.
        _access.info(
            "%s %s %d %.1fms request_id=%s",
            method,
            scope["path"],
            status,
            elapsed * 1000,
            request_id,
            extra={"request_id": request_id, "status": status, "route": template},
        )


def _wants_login_page(scope: Scope, headers: dict[str, str]) -> bool:
    """Is this a browser asking for a UI page (not the API), to be sent to the login?"""
    path = scope["path"]
    return (
        scope["method"] == "GET"
        and not path.startswith("/api/")
        and "text/html" in headers.get("accept", "")
    )


async def _send_login_redirect(send: Send, scope: Scope) -> None:
    from urllib.parse import quote

    target = "/login?next=" + quote(scope["path"], safe="/")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", target.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _token_in_query(query: str) -> bool:
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in _TOKEN_PARAMS or value.startswith(TOKEN_PREFIX):
            return True
    return contains_token(unquote(query))


async def _audit_quietly(auth: Authenticator, address: str, reason: str, request_id: str) -> None:
    import anyio.to_thread

    # The refusal stands even if the database cannot take the entry.
    with contextlib.suppress(RegistryError):
        await anyio.to_thread.run_sync(auth.audit_failure, address, reason, request_id)


async def _send_error(
    send: Send,
    error: RegistryError,
    status: int,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    path: str = "",
) -> None:
    # MLflow's client reads only MLflow's error shape (else it reports INTERNAL_ERROR).
    if is_mlflow_path(path):
        body = json.dumps(mlflow_error_body(error)).encode()
    else:
        body = json.dumps(error_to_json(error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
