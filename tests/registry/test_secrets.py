"""An S3 endpoint password never reaches an error, a span or a log line (issue 14, finding 5)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crucible_model_registry import Registry, StorageError, telemetry
from crucible_model_registry.storage.s3 import S3Storage

SECRET = "SuperSecretKey123"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    telemetry.set_tracer_provider(provider)
    yield exp
    telemetry.set_tracer_provider(None)
    provider.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_upload_shows_no_endpoint_password(
    registry: Registry,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    tmp_path,
) -> None:
    caplog.set_level(logging.DEBUG)
    storage = S3Storage(
        "models",
        region="us-east-1",
        endpoint_url=f"http://minio:{SECRET}@127.0.0.1:{_closed_port()}",
        access_key_id="AKID",
        secret_access_key=SECRET,
        max_attempts=1,
        connect_timeout=1,
    )
    on_s3 = Registry(registry.engine, storage=storage)
    version = on_s3.register(model_name="m", recipe="r", base_model="b", training_config={})
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    with pytest.raises(StorageError) as info:
        on_s3.upload_artifact(version, "checkpoint", src)
    assert info.value.backend == "s3"

    shown = [str(info.value), repr(info.value), repr(storage), caplog.text]
    spans = exporter.get_finished_spans()
    assert spans
    for span in spans:
        shown += [str(v) for v in span.attributes.values()]
        shown += [str(v) for event in span.events for v in event.attributes.values()]
        shown.append(str(span.status.description))
    assert not [text for text in shown if SECRET in text]
    assert on_s3.get_version(version.id).artifacts == []
