"""Telemetry: handler attachment and isolation, emitted values, OpenTelemetry spans."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from crucible_model_registry import telemetry
from crucible_model_registry.errors import ValidationError

REGISTER = ("crucible_model_registry", "register")
PROMOTE = ("crucible_model_registry", "promote")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, float], dict[str, object]]] = []

    def __call__(
        self, event: tuple[str, ...], measurements: dict[str, float], metadata: dict[str, object]
    ) -> None:
        self.calls.append((event, measurements, metadata))


@pytest.fixture(autouse=True)
def _isolated_telemetry() -> Iterator[None]:
    before = set(telemetry.list_handlers())
    yield
    for handler_id in set(telemetry.list_handlers()) - before:
        telemetry.detach(handler_id)
    telemetry.set_tracer_provider(None)


@pytest.fixture
def recorder() -> Recorder:
    rec = Recorder()
    telemetry.attach("recorder", REGISTER, rec)
    return rec


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    telemetry.set_tracer_provider(provider)
    yield exp
    provider.shutdown()


# --- handlers ---------------------------------------------------------------------------


def test_operation_emits_count_duration_and_metadata(recorder):
    with telemetry.operation("register", model="m") as op:
        op.metadata["version"] = "3"
        op.metadata["stage"] = "experiment"

    [(event, measurements, metadata)] = recorder.calls
    assert event == REGISTER
    assert measurements["count"] == 1
    assert isinstance(measurements["duration_ns"], int)
    assert measurements["duration_ns"] >= 0
    assert metadata == {"model": "m", "version": "3", "stage": "experiment", "outcome": "ok"}


def test_extra_measurements_are_reported(recorder):
    with telemetry.operation("register") as op:
        op.measurements["size_bytes"] = 123

    [(_, measurements, _)] = recorder.calls
    assert measurements["size_bytes"] == 123
    assert set(measurements) == {"count", "duration_ns", "size_bytes"}


def test_operation_cannot_override_count_or_duration(recorder):
    with telemetry.operation("register") as op:
        op.measurements["count"] = 7
        op.measurements["duration_ns"] = -1

    [(_, measurements, _)] = recorder.calls
    assert measurements["count"] == 1
    assert measurements["duration_ns"] >= 0


def test_outcome_set_by_the_operation_is_reported(recorder):
    with telemetry.operation("register") as op:
        op.outcome = "denied"

    assert recorder.calls[0][2]["outcome"] == "denied"


def test_exception_propagates_unchanged_and_emits_error(recorder):
    boom = KeyError("x")
    with pytest.raises(KeyError) as info, telemetry.operation("register", model="m"):
        raise boom

    assert info.value is boom
    [(_, measurements, metadata)] = recorder.calls
    assert measurements["count"] == 1
    assert metadata["outcome"] == "error"
    assert metadata["error"] == "KeyError"
    assert metadata["model"] == "m"


def test_explicit_outcome_is_kept_when_the_block_raises(recorder):
    def denied() -> None:
        with telemetry.operation("register") as op:
            op.outcome = "denied"
            raise ValidationError.single("stage", "no")

    with pytest.raises(ValidationError):
        denied()

    metadata = recorder.calls[0][2]
    assert metadata["outcome"] == "denied"
    assert metadata["error"] == "ValidationError"


def test_handler_only_gets_its_events(recorder):
    with telemetry.operation("promote"):
        pass

    assert recorder.calls == []


def test_attach_to_several_events():
    rec = Recorder()
    telemetry.attach("several", [REGISTER, PROMOTE], rec)
    for name in ("register", "promote", "upload"):
        with telemetry.operation(name):
            pass

    assert [event for event, _, _ in rec.calls] == [REGISTER, PROMOTE]
    assert telemetry.list_handlers()["several"] == (REGISTER, PROMOTE)


def test_attach_to_all_events():
    rec = Recorder()
    telemetry.attach("all", telemetry.EVENTS, rec)
    for name in ("register", "promote", "upload", "download"):
        with telemetry.operation(name):
            pass

    assert [event for event, _, _ in rec.calls] == list(telemetry.EVENTS)


def test_detach_stops_calls_and_reports_whether_it_was_attached(recorder):
    assert telemetry.detach("recorder") is True
    assert telemetry.detach("recorder") is False
    assert telemetry.detach("never-attached") is False
    with telemetry.operation("register"):
        pass

    assert recorder.calls == []
    assert "recorder" not in telemetry.list_handlers()


def test_duplicate_handler_id_is_rejected(recorder):
    other = Recorder()
    with pytest.raises(ValidationError) as info:
        telemetry.attach("recorder", PROMOTE, other)

    assert set(info.value.errors) == {"handler_id"}
    assert telemetry.list_handlers()["recorder"] == (REGISTER,)
    with telemetry.operation("register"):
        pass
    assert len(recorder.calls) == 1
    assert other.calls == []


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ("register", "event"),
        ((), "event"),
        ([], "event"),
        (("crucible_model_registry", ""), "event"),
        ([REGISTER, "promote"], "event"),
        ((REGISTER, 3), "event"),
    ],
)
def test_malformed_event_is_rejected(event, field):
    with pytest.raises(ValidationError) as info:
        telemetry.attach("bad", event, Recorder())

    assert set(info.value.errors) == {field}
    assert "bad" not in telemetry.list_handlers()


def test_handler_must_be_callable():
    with pytest.raises(ValidationError) as info:
        telemetry.attach("bad", REGISTER, "not a function")  # type: ignore[arg-type]

    assert set(info.value.errors) == {"handler"}
    assert "bad" not in telemetry.list_handlers()


def test_raising_handler_is_detached_and_logged(recorder, caplog):
    calls = []

    def broken(event, measurements, metadata):
        calls.append(event)
        raise RuntimeError("handler bug")

    telemetry.attach("broken", REGISTER, broken)
    with caplog.at_level(logging.ERROR, logger="crucible_model_registry.telemetry"):
        with telemetry.operation("register") as op:
            op.metadata["version"] = "1"
        with telemetry.operation("register"):
            pass

    assert calls == [REGISTER]
    assert "broken" not in telemetry.list_handlers()
    assert len(recorder.calls) == 2
    [record] = caplog.records
    assert record.name == "crucible_model_registry.telemetry"
    assert record.levelno == logging.ERROR
    assert "broken" in record.args
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError


def test_raising_handler_does_not_mask_the_operations_exception(caplog):
    def broken(event, measurements, metadata):
        raise RuntimeError("handler bug")

    telemetry.attach("broken", REGISTER, broken)
    with (
        caplog.at_level(logging.ERROR, logger="crucible_model_registry.telemetry"),
        pytest.raises(KeyError),
        telemetry.operation("register"),
    ):
        raise KeyError("x")

    assert "broken" not in telemetry.list_handlers()


def test_handlers_get_their_own_copies():
    def vandal(event, measurements, metadata):
        measurements["count"] = 99
        metadata["model"] = "changed"

    second = Recorder()
    telemetry.attach("a-vandal", REGISTER, vandal)
    telemetry.attach("b-second", REGISTER, second)
    with telemetry.operation("register", model="m") as op:
        pass

    [(_, measurements, metadata)] = second.calls
    assert measurements["count"] == 1
    assert metadata["model"] == "m"
    assert op.metadata == {"model": "m"}


def test_concurrent_attach_detach_and_operations():
    threads_n, ops_n = 8, 300
    recorders = [Recorder() for _ in range(threads_n)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(i: int) -> None:
        try:
            barrier.wait()
            telemetry.attach(f"t{i}", ("crucible_model_registry", f"op{i}"), recorders[i])
            for _ in range(ops_n):
                with telemetry.operation(f"op{i}"):
                    pass
                # Churn the shared index while other threads emit.
                telemetry.attach(f"churn{i}", REGISTER, Recorder())
                telemetry.detach(f"churn{i}")
            telemetry.detach(f"t{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert [len(r.calls) for r in recorders] == [ops_n] * threads_n
    assert not any(h.startswith(("t", "churn")) for h in telemetry.list_handlers())


def test_no_handler_and_no_provider_emits_nothing_and_keeps_the_operation():
    with telemetry.operation("register", model="m") as op:
        op.metadata["version"] = "1"

    assert op.metadata == {"model": "m", "version": "1"}


def test_importing_and_using_telemetry_does_not_import_opentelemetry():
    code = (
        "import sys\n"
        "from crucible_model_registry import telemetry\n"
        "telemetry.attach('h', telemetry.EVENTS, lambda *a: None)\n"
        "with telemetry.operation('register', model='m'):\n"
        "    pass\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- OpenTelemetry ----------------------------------------------------------------------


def _only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


class _Color(StrEnum):
    RED = "red"


def test_operation_is_a_span_with_registry_attributes(exporter):
    with telemetry.operation("promote", model="m", version="3", backend="s3") as op:
        op.metadata["from_stage"] = "staging"
        op.metadata["to_stage"] = "production"
        op.metadata["actor"] = "alice"
        op.metadata["missing"] = None
        op.metadata["enum"] = _Color.RED
        op.measurements["size_bytes"] = 123

    span = _only_span(exporter)
    assert span.name == "crucible_model_registry.promote"
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "crucible_model_registry"
    assert dict(span.attributes or {}) == {
        "cmr.model": "m",
        "cmr.version": "3",
        "cmr.backend": "s3",
        "cmr.from_stage": "staging",
        "cmr.to_stage": "production",
        "cmr.actor": "alice",
        "cmr.enum": "red",
        "cmr.outcome": "ok",
        "cmr.size_bytes": 123,
    }
    assert type(span.attributes["cmr.enum"]) is str  # type: ignore[index]


def test_failed_operation_records_the_error_on_its_span(exporter, recorder):
    with pytest.raises(KeyError), telemetry.operation("register", model="m"):
        raise KeyError("x")

    span = _only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["cmr.outcome"] == "error"
    assert span.attributes["cmr.error"] == "KeyError"
    assert span.attributes["error.type"] == "KeyError"
    [exception_event] = span.events
    assert exception_event.name == "exception"
    assert exception_event.attributes is not None
    assert exception_event.attributes["exception.type"] == "KeyError"
    assert recorder.calls[0][2]["outcome"] == "error"


def test_nested_operations_nest_their_spans(exporter):
    with telemetry.operation("register"), telemetry.operation("upload"):
        pass

    inner, outer = exporter.get_finished_spans()
    assert (inner.name, outer.name) == (
        "crucible_model_registry.upload",
        "crucible_model_registry.register",
    )
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id


def test_span_is_made_current_during_the_operation(exporter):
    from opentelemetry import trace

    with telemetry.operation("register"):
        current = trace.get_current_span()

    assert current.get_span_context().span_id == _only_span(exporter).context.span_id
    assert not trace.get_current_span().get_span_context().is_valid


def test_resetting_the_provider_stops_spans(exporter):
    telemetry.set_tracer_provider(None)
    with telemetry.operation("register"):
        pass

    # No global provider is configured in the test process, so nothing records.
    assert exporter.get_finished_spans() == ()
