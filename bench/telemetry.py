"""Per-operation overhead of telemetry.operation() with and without handlers and OpenTelemetry.

Run: ``.venv/bin/python bench/telemetry.py [--number N]``. Prints nanoseconds per
operation above an empty loop body (best of several repeats). The first rows run before
anything imports OpenTelemetry; later rows import it, then configure a local SDK provider,
then the global one.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable

from crucible_model_registry import telemetry

REPEAT = 5


def _per_op_ns(body: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(body, number=number, repeat=REPEAT))
    return best / number * 1e9


def _operation() -> None:
    with telemetry.operation("register", model="m") as op:
        op.metadata["version"] = "3"


def _baseline() -> None:
    metadata: dict[str, object] = {"model": "m"}
    metadata["version"] = "3"


def _handler(
    event: telemetry.Event, measurements: dict[str, float], meta: dict[str, object]
) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=200_000)
    number = parser.parse_args().number

    baseline = _per_op_ns(_baseline, number)
    rows: list[tuple[str, float]] = []

    def measure(label: str, body: Callable[[], object] = _operation, n: int = number) -> None:
        rows.append((label, _per_op_ns(body, n) - baseline))

    assert "opentelemetry.trace" not in sys.modules
    measure("no handler, OpenTelemetry not imported")
    telemetry.attach("bench", ("crucible_model_registry", "register"), _handler)
    measure("one handler, OpenTelemetry not imported")
    telemetry.detach("bench")
    telemetry.attach("bench", ("crucible_model_registry", "promote"), _handler)
    measure("a handler on another event only")
    telemetry.detach("bench")

    from opentelemetry import trace

    measure("no handler, OTel API imported, no provider (no-op)")
    noop_tracer = trace.get_tracer("bench")

    def always_span() -> None:
        with noop_tracer.start_as_current_span("x"):
            _baseline()

    measure("  for comparison: a non-recording span per call", always_span)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sdk_number = max(number // 10, 1000)

    def sdk_operation() -> None:
        _operation()
        exporter.clear()

    sdk_tracer = provider.get_tracer("bench")

    def bare_sdk_span() -> None:
        with sdk_tracer.start_as_current_span("x") as span:
            span.set_attribute("cmr.model", "m")
            span.set_attribute("cmr.version", "3")
        exporter.clear()

    telemetry.set_tracer_provider(provider)
    measure("OTel SDK, in-memory exporter (local provider)", sdk_operation, sdk_number)
    measure("  for comparison: a bare SDK span, 2 attributes", bare_sdk_span, sdk_number)
    telemetry.attach("bench", ("crucible_model_registry", "register"), _handler)
    measure("OTel SDK + one handler", sdk_operation, sdk_number)
    telemetry.detach("bench")
    telemetry.set_tracer_provider(None)

    trace.set_tracer_provider(provider)
    measure("OTel SDK, in-memory exporter (global provider)", sdk_operation, sdk_number)

    width = max(len(label) for label, _ in rows)
    print(f"{'scenario':<{width}}  {'ns/op':>8}  {'µs/op':>7}")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 7}")
    for label, ns in rows:
        print(f"{label:<{width}}  {ns:>8.0f}  {ns / 1000:>7.2f}")
    print(f"(baseline loop body {baseline:.0f} ns subtracted; best of {REPEAT} repeats)")


if __name__ == "__main__":
    main()
