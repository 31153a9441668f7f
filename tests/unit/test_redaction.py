"""Secrets never shown: the redaction rules, reprs of settings, spans and log records."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crucible_model_registry import ConfigurationError, Registry, telemetry
from crucible_model_registry.cli._session import Session
from crucible_model_registry.domain.redaction import redact, redact_options
from crucible_model_registry.settings import Settings
from crucible_model_registry.storage.s3 import S3Storage

SECRET = "SuperSecretKey123"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"Invalid endpoint: http://minio:{SECRET}@bad host:9000",
            "Invalid endpoint: http://minio:***@bad host:9000",
        ),
        (f"postgresql+psycopg://u:{SECRET}@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        (f"postgresql://u@db/x?sslmode=require&password={SECRET}", None),
        (f"https://b.s3.amazonaws.com/k?X-Amz-Signature={SECRET}&X-Amz-Expires=60", None),
        (f"https://h/k?X-Amz-Security-Token={SECRET}", None),
        (f"https://h/a?token={SECRET}#frag", None),
        (f"host=db password={SECRET} user=x", "host=db password=*** user=x"),
        (f"http://u:pa/ss{SECRET}@host/x", "http://u:***@host/x"),
    ],
)
def test_secrets_in_urls_are_masked(text: str, shown: str | None) -> None:
    redacted = redact(text)
    assert SECRET not in redacted
    if shown is not None:
        assert redacted == shown


@pytest.mark.parametrize(
    "text",
    [
        "plain text",
        "http://host:8080/path?page=2&sort=name",
        "sqlite:////tmp/registry.db",
        "postgresql://alice@db/x",
        "s3://bucket/m/1/checkpoint/model.bin",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_secret_options_are_masked() -> None:
    options = {
        "bucket": "b",
        "secret_access_key": SECRET,
        "session_token": SECRET,
        "endpoint_url": f"http://minio:{SECRET}@minio:9000",
        "token": SECRET,
    }
    shown = redact_options(options)
    assert SECRET not in repr(shown)
    assert shown["bucket"] == "b"


def test_settings_repr_hides_the_database_password_and_secret_options() -> None:
    settings = Settings(
        database_url=f"postgresql://cmr:{SECRET}@db/registry",
        storage_backend="s3",
        storage_options={"bucket": "b", "secret_access_key": SECRET, "access_key_id": "AKID"},
    )
    for shown in (repr(settings), str(settings)):
        assert SECRET not in shown
        assert "db/registry" in shown
    assert settings.database_url == f"postgresql://cmr:{SECRET}@db/registry"  # still usable
    assert settings.storage_options["secret_access_key"] == SECRET


def test_the_cli_session_repr_hides_the_database_password() -> None:
    session = Session(database_url=f"postgresql://cmr:{SECRET}@db/registry?password={SECRET}")
    assert SECRET not in repr(session)
    session._settings = Settings(database_url=session.database_url)
    assert SECRET not in repr(session)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://cmr:{SECRET}@db:abc/registry",
        f"postgresql://cmr:{SECRET}@db:99999/registry",
        f"not a url {SECRET}",
    ],
)
def test_a_bad_database_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Registry.from_url(url)
    if "@" in url:
        assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        f"http://minio:{SECRET}@bad host:9000",
        f"http://minio:{SECRET}@minio:port/",
        f"ftp://minio:{SECRET}@minio:21",
    ],
)
def test_a_bad_s3_endpoint_is_a_configuration_error_without_the_password(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        S3Storage("bucket", endpoint_url=endpoint)
    assert SECRET not in str(info.value)
    assert "endpoint_url" in str(info.value)


def test_the_s3_repr_hides_the_endpoint_password() -> None:
    storage = S3Storage(
        "bucket",
        endpoint_url=f"http://minio:{SECRET}@minio:9000",
        secret_access_key=SECRET,
        access_key_id="AKID",
    )
    assert SECRET not in repr(storage)


# --------------------------------------------------------------------------- spans and logs


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    telemetry.set_tracer_provider(provider)
    yield exp
    telemetry.set_tracer_provider(None)
    provider.shutdown()


def _raise_with_a_secret_cause() -> None:
    try:
        raise ValueError(f"Invalid endpoint: http://minio:{SECRET}@bad host:9000")
    except ValueError as exc:
        raise RuntimeError(
            f"could not connect to http://minio:{SECRET}@minio/b?sig={SECRET}"
        ) from exc


def test_a_span_never_carries_a_secret(exporter: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError),
        telemetry.operation(
            "upload", model="m", storage_path=f"https://h/k?X-Amz-Signature={SECRET}"
        ),
    ):
        _raise_with_a_secret_cause()
    [span] = exporter.get_finished_spans()
    texts = [str(v) for v in span.attributes.values()]
    for event in span.events:
        texts += [event.name, *(str(v) for v in event.attributes.values())]
    texts.append(str(span.status.description))
    assert texts
    assert not [text for text in texts if SECRET in text]
    [event] = span.events
    assert "minio:***@" in str(event.attributes["exception.stacktrace"])  # still useful


def test_log_records_of_the_registry_never_carry_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    telemetry.logger  # noqa: B018 - importing telemetry protects the registry's loggers
    for name in ("crucible_model_registry", "crucible_model_registry.telemetry"):
        logger = logging.getLogger(name)
        logger.warning("could not delete %s", f"s3://b/k?X-Amz-Signature={SECRET}")
        try:
            _raise_with_a_secret_cause()
        except RuntimeError:
            logger.exception("cleanup failed for %s", f"http://u:{SECRET}@h/x")
    assert caplog.records
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in (record.exc_text or "")
    assert "Traceback" in caplog.text


def test_a_handler_that_raises_a_secret_is_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(event: object, measurements: object, metadata: object) -> None:
        _raise_with_a_secret_cause()

    telemetry.attach("leaky", ("crucible_model_registry", "register"), handler)
    with telemetry.operation("register", model="m"):
        pass
    assert "leaky" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "endpoint", [f"http://u:{SECRET}@hub:abc", "http://hub:99999", "http://bad host"]
)
def test_a_bad_hub_endpoint_is_a_configuration_error_without_the_password(endpoint: str) -> None:
    from crucible_model_registry.storage.huggingface import HuggingFaceStorage

    with pytest.raises(ConfigurationError) as info:
        HuggingFaceStorage("org/repo", endpoint=endpoint)
    assert "endpoint" in str(info.value)
    assert SECRET not in str(info.value)


def test_the_hub_repr_hides_the_endpoint_password() -> None:
    from crucible_model_registry.storage.huggingface import HuggingFaceStorage

    storage = HuggingFaceStorage("org/repo", endpoint=f"https://u:{SECRET}@hub", token=SECRET)
    assert SECRET not in repr(storage)
