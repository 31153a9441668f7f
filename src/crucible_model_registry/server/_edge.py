"""What every request passes through first: request id, actor, body limit, metrics, access log.

A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``), so the actor's context
variable is set in the task that runs the route and reaches its thread-pool call.
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
from urllib.parse import unquote

from crucible_model_registry._context import acting_as
from crucible_model_registry.errors import RegistryError, ValidationError
from crucible_model_registry.server.errors import status_of
from crucible_model_registry.wire import error_to_json

__all__ = ["ACTOR_HEADER", "REQUEST_ID_HEADER", "Edge", "Metrics"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
ACTOR_HEADER = "x-cmr-actor"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UPLOAD_PATH = re.compile(r"/api/v1/versions/.+/artifacts/[^/]+")  # streams: no body limit
_access = logging.getLogger("crucible_model_registry.server.access")


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
            uploads (``PUT .../artifacts/...``); larger ones get 413 before any handler runs.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

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
        is_upload = method == "PUT" and _UPLOAD_PATH.fullmatch(scope["path"]) is not None

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
        given_actor = headers.get(ACTOR_HEADER)
        actor = None if given_actor is None else unquote(given_actor, errors="replace")
        try:
            try:
                if not exceeded[0]:
                    with acting_as(actor) if actor else contextlib.nullcontext():
                        await self.app(scope, receive_counted, send_unless_exceeded)
            except Exception:
                if not exceeded[0]:
                    raise
            if exceeded[0]:
                error = ValidationError.single(
                    "body",
                    f"the request body exceeds the server's limit of {self.max_body_bytes} bytes",
                )
                await _send_error(send_with_id, error, 413)
        except RegistryError as exc:  # a bad actor header
            await _send_error(send_with_id, exc, status_of(exc))
        finally:
            self._record(scope, status[0], time.perf_counter() - started, request_id)

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


async def _send_error(send: Send, error: RegistryError, status: int) -> None:
    body = json.dumps(error_to_json(error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
