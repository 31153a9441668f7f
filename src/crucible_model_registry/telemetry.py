"""Telemetry: handlers attached to registry events, and OpenTelemetry spans when it is in use.

Every registry operation runs inside :func:`operation`; on exit it emits one event to the
handlers attached to it and, when an OpenTelemetry tracer provider is configured, ends one
span. With nothing attached and no provider configured, an operation costs well under 2 µs
(``bench/telemetry.py``).

```python
def log_register(event, measurements, metadata):
    print(event, measurements["duration_ns"], metadata["model"], metadata["outcome"])

telemetry.attach("log-register", ("crucible_model_registry", "register"), log_register)
telemetry.detach("log-register")
```
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Final, cast

from crucible_model_registry.domain.redaction import protect_logger, redact, redact_exception
from crucible_model_registry.errors import ValidationError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "EVENTS",
    "PREFIX",
    "Event",
    "Handler",
    "Operation",
    "attach",
    "detach",
    "list_handlers",
    "operation",
    "set_tracer_provider",
]

PREFIX: Final = "crucible_model_registry"

Event = tuple[str, ...]
"""An event name: ``("crucible_model_registry", "register")``."""

Handler = Callable[[Event, dict[str, float], dict[str, object]], object]
"""``handler(event, measurements, metadata)``; its return value is ignored."""

EVENTS: Final[tuple[Event, ...]] = (
    (PREFIX, "register"),
    (PREFIX, "promote"),
    (PREFIX, "upload"),
    (PREFIX, "download"),
)
"""The events the registry emits; ``attach(id, EVENTS, handler)`` listens to all of them."""

logger = protect_logger(logging.getLogger("crucible_model_registry.telemetry"))
# The package's own logger (uploads, downloads, model cards) masks secrets the same way.
protect_logger(logging.getLogger("crucible_model_registry"))


# --- handlers ---------------------------------------------------------------------------


class _Attachment:
    __slots__ = ("events", "handler", "handler_id")

    def __init__(self, handler_id: str, events: tuple[Event, ...], handler: Handler) -> None:
        self.handler_id = handler_id
        self.events = events
        self.handler = handler


_lock = threading.Lock()
_attachments: dict[str, _Attachment] = {}
# Rebuilt under _lock on every change and swapped in whole, so emitting reads it without a lock.
_by_event: dict[Event, tuple[_Attachment, ...]] = {}


def _reindex() -> None:
    global _by_event  # noqa: PLW0603
    index: dict[Event, list[_Attachment]] = {}
    for attachment in _attachments.values():
        for event in attachment.events:
            index.setdefault(event, []).append(attachment)
    _by_event = {event: tuple(items) for event, items in index.items()}


def _parse_events(event: Event | Iterable[Event]) -> tuple[Event, ...]:
    one = isinstance(event, tuple) and all(isinstance(part, str) for part in event)
    several = not one and isinstance(event, Iterable) and not isinstance(event, str | bytes)
    candidates: list[object] = list(event) if several else [event]
    if not candidates:
        raise ValidationError.single("event", "give at least one event")
    events: list[Event] = []
    for candidate in candidates:
        if (
            not isinstance(candidate, tuple)
            or not candidate
            or not all(isinstance(part, str) and part for part in candidate)
        ):
            raise ValidationError.single(
                "event",
                f"{candidate!r} is not an event: use a tuple of names such as "
                f"{(PREFIX, 'register')!r}",
            )
        if candidate not in events:
            events.append(candidate)
    return tuple(events)


def attach(handler_id: str, event: Event | Iterable[Event], handler: Handler) -> None:
    """Call ``handler(event, measurements, metadata)`` after every matching operation.

    Handlers run synchronously in the thread that ran the operation, after it finished, and
    must treat both dicts as read-only. A handler that raises is detached and logged on the
    ``crucible_model_registry.telemetry`` logger; the operation is never affected.

    Args:
        handler_id: a name unique among attached handlers, used to detach it.
        event: one event such as ``("crucible_model_registry", "register")``, or several
            (a list of them, or :data:`EVENTS`).
        handler: any callable taking the event, the measurements and the metadata.

    Raises:
        ValidationError: the id is already attached, an event is malformed, or the handler
            is not callable.
    """
    if not isinstance(handler_id, str) or not handler_id:
        raise ValidationError.single("handler_id", "give a non-empty string")
    events = _parse_events(event)
    if not callable(handler):
        raise ValidationError.single("handler", f"{handler!r} is not callable")
    with _lock:
        if handler_id in _attachments:
            raise ValidationError.single(
                "handler_id", f"{handler_id!r} is already attached; detach it first"
            )
        _attachments[handler_id] = _Attachment(handler_id, events, handler)
        _reindex()


def detach(handler_id: str) -> bool:
    """Stop calling the handler attached as ``handler_id``.

    Returns:
        True if it was attached, False if no handler has that id (never attached, already
        detached, or detached because it raised), so teardown code can call it blindly.
    """
    with _lock:
        if _attachments.pop(handler_id, None) is None:
            return False
        _reindex()
        return True


def list_handlers() -> dict[str, tuple[Event, ...]]:
    """Every attached handler's id and the events it listens to."""
    with _lock:
        return {a.handler_id: a.events for a in _attachments.values()}


def _detach_failed(attachment: _Attachment, event: Event) -> None:
    with _lock:
        # Another thread may have replaced it under the same id meanwhile: keep that one.
        if _attachments.get(attachment.handler_id) is attachment:
            del _attachments[attachment.handler_id]
            _reindex()
    # The handler's own traceback, but none of the event's values (they are the caller's).
    logger.error(
        "telemetry handler %r raised on event %s and was detached",
        attachment.handler_id,
        ".".join(event),
        exc_info=True,
    )


def _emit(
    attachments: tuple[_Attachment, ...],
    event: Event,
    measurements: dict[str, float],
    metadata: dict[str, object],
) -> None:
    for attachment in attachments:
        try:
            # Copies, so one handler's edits never reach the next.
            attachment.handler(event, dict(measurements), dict(metadata))
        except Exception:
            _detach_failed(attachment, event)


# --- OpenTelemetry ----------------------------------------------------------------------

_TRACER_NAME: Final = "crucible_model_registry"
_OTEL_MODULE: Final = "opentelemetry.trace"

_MISSING: Final = object()

_provider_override: TracerProvider | None = None
_tracer_cache: tuple[TracerProvider, Tracer] | None = None
_otel_env_checked = False


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Send the registry's spans to ``provider`` instead of OpenTelemetry's global one.

    OpenTelemetry lets a process set its global provider only once; this makes spans
    testable with a local ``TracerProvider`` and an in-memory exporter.

    Args:
        provider: the provider to use, or None to go back to the global provider.
    """
    global _provider_override, _tracer_cache  # noqa: PLW0603
    with _lock:
        _provider_override = provider
        _tracer_cache = None


def _check_otel_env() -> None:
    # A provider named only in the environment is loaded by OpenTelemetry on its first
    # get_tracer_provider() call, which nobody else may make: make it once ourselves.
    global _otel_env_checked  # noqa: PLW0603
    _otel_env_checked = True
    if "OTEL_PYTHON_TRACER_PROVIDER" in os.environ:
        try:
            from opentelemetry import trace
        except ImportError:
            return
        trace.get_tracer_provider()


def _active_provider() -> TracerProvider | None:
    """The provider spans go to, or None when spans would record nothing.

    Nothing is imported here: a process that never imported ``opentelemetry.trace`` cannot
    have configured a tracer provider, so its spans would all be no-ops anyway.
    """
    if _provider_override is not None:
        return _provider_override
    if not _otel_env_checked:
        _check_otel_env()
    trace = sys.modules.get(_OTEL_MODULE)
    if trace is None:
        return None
    # get_tracer_provider() reads os.environ on every call while no provider is set (about
    # 1 µs here), so read the module's global directly and fall back if it ever moves.
    provider = getattr(trace, "_TRACER_PROVIDER", _MISSING)
    if provider is _MISSING:
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
        return provider  # type: ignore[no-any-return]
    if provider is None or isinstance(provider, trace.NoOpTracerProvider):
        return None
    return cast("TracerProvider", provider)


def _tracer() -> Tracer | None:
    global _tracer_cache  # noqa: PLW0603
    provider = _active_provider()
    if provider is None:
        return None
    cache = _tracer_cache
    if cache is not None and cache[0] is provider:
        return cache[1]
    tracer = provider.get_tracer(_TRACER_NAME, _package_version())
    _tracer_cache = (provider, tracer)
    return tracer


def _package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crucible-model-registry")
    except PackageNotFoundError:
        return None


def _attribute(value: object) -> str | bool | int | float | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(str(value))  # a StrEnum member becomes its plain value
    if value is None:
        return None
    return redact(str(value))


class _Span:
    """A started span made current, and the token that restores the previous context."""

    __slots__ = ("span", "token")

    def __init__(self, tracer: Tracer, name: str) -> None:
        from opentelemetry import context, trace

        self.span: Span = tracer.start_span(f"{PREFIX}.{name}")
        self.token: Token[Context] = context.attach(trace.set_span_in_context(self.span))

    def finish(
        self,
        measurements: dict[str, float],
        metadata: dict[str, object],
        error: BaseException | None,
    ) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        try:
            if span.is_recording():
                for key, value in (*metadata.items(), *measurements.items()):
                    attribute = _attribute(value)
                    if attribute is not None:
                        span.set_attribute(f"cmr.{key}", attribute)
                if error is not None:
                    span.set_attribute("error.type", type(error).__qualname__)
                    # The SDK would record str(error) and the traceback (causes included)
                    # as they are: a driver's or SDK's message may hold a URL's password.
                    message, stacktrace = redact_exception(error)
                    span.record_exception(
                        error,
                        attributes={
                            "exception.message": message,
                            "exception.stacktrace": stacktrace,
                        },
                    )
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        finally:
            span.end()
            context.detach(self.token)


# --- operations -------------------------------------------------------------------------

_EVENT_CACHE: dict[str, Event] = {event[1]: event for event in EVENTS}


class Operation:
    """One registry operation being measured; returned by :func:`operation`.

    Attributes:
        event: the event emitted on exit.
        metadata: what the operation is about (model, version, stage, backend, ...); add
            to it as values become known.
        measurements: numbers to report besides ``count`` and ``duration_ns`` (such as
            ``size_bytes``).
        outcome: None until set; on exit it becomes ``"ok"``, or ``"error"`` when the
            block raised, unless the operation set its own (``"denied"``, ...).
    """

    __slots__ = ("_name", "_span", "_start", "event", "measurements", "metadata", "outcome")

    def __init__(self, name: str, metadata: dict[str, object]) -> None:
        event = _EVENT_CACHE.get(name)
        if event is None:
            event = (PREFIX, name)
        self._name = name
        self.event: Event = event
        self.metadata = metadata
        self.measurements: dict[str, float] = {}
        self.outcome: str | None = None
        self._span: _Span | None = None
        self._start = 0

    def __enter__(self) -> Operation:
        tracer = _tracer()
        if tracer is not None:
            self._span = _Span(tracer, self._name)
        self._start = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ns = time.perf_counter_ns() - self._start
        attachments = _by_event.get(self.event)
        span = self._span
        if not attachments and span is None:
            return
        measurements: dict[str, float] = {"count": 1, "duration_ns": duration_ns}
        for key, value in self.measurements.items():
            measurements.setdefault(key, value)
        metadata = dict(self.metadata)
        if self.outcome is not None:
            metadata["outcome"] = self.outcome
        else:
            metadata["outcome"] = "ok" if exc is None else "error"
        if exc is not None:
            metadata["error"] = type(exc).__name__
        if span is not None:
            # The span has its own duration; only the operation's own numbers are added.
            self._span = None
            span.finish(self.measurements, metadata, exc)
        if attachments:
            _emit(attachments, self.event, measurements, metadata)
        # Returning None lets the operation's exception propagate unchanged.


def operation(name: str, /, **metadata: object) -> Operation:
    """Measure one registry operation: a context manager that emits its event on exit.

    ```python
    with telemetry.operation("register", model="m") as op:
        ...
        op.metadata["version"] = "3"
        op.measurements["size_bytes"] = 123
    ```

    On exit, whether the block returned or raised, every handler attached to
    ``("crucible_model_registry", name)`` gets measurements ``count`` (1), ``duration_ns``
    and the operation's own, and metadata with ``outcome`` (plus ``error``, the exception's
    class name, when the block raised). The exception always propagates unchanged. When an
    OpenTelemetry tracer provider is configured the operation is also a span named
    ``crucible_model_registry.<name>`` carrying the metadata and the operation's own
    measurements as ``cmr.*`` attributes, with the exception recorded on it.

    Args:
        name: the operation: ``register``, ``promote``, ``upload``, ``download``, ...
        **metadata: what is known up front, such as ``model="m"``.
    """
    return Operation(name, metadata)
