"""Registry over its MetadataBackend: construction from an engine, a URL or a backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from crucible_model_registry import ConfigurationError, Query, Registry, SchemaNotReadyError
from crucible_model_registry.backends.sql import SqlBackend
from crucible_model_registry.storage.local import LocalStorage


def _register(registry: Registry, i: int = 0) -> object:
    return registry.register(
        model_name="seam", recipe="sft", base_model="org/base", training_config={"i": i}
    )


def test_a_registry_over_a_given_backend_reads_what_another_wrote(db_url: str, tmp_path: Path):
    writer = Registry.from_url(db_url)
    backend = SqlBackend.from_url(db_url)
    reader = Registry(backend=backend, storage=LocalStorage(tmp_path))
    try:
        written = _register(writer)
        assert reader.get_version("seam@1") == written
        assert reader.backend is backend
        assert reader.engine is backend.engine
        assert Query(reader).where_model_name("seam").count() == 1
    finally:
        writer.close()
        reader.close()


def test_the_engine_form_still_builds_a_sql_backend(db_url: str):
    engine = create_engine(db_url)
    registry = Registry(engine)
    try:
        assert isinstance(registry.backend, SqlBackend)
        assert registry.engine is engine
        _register(registry)
        assert [v.version for v in registry.query({"model_name": "seam"})] == ["1"]
    finally:
        registry.close()


def test_neither_engine_nor_backend_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        Registry()


def test_both_engine_and_backend_is_a_configuration_error(sqlite_url: str):
    backend = SqlBackend.from_url(sqlite_url)
    with pytest.raises(ConfigurationError):
        Registry(backend.engine, backend=backend)
    with pytest.raises(ConfigurationError):
        Registry(backend=backend, auto_migrate=True)


def test_auto_migrate_belongs_to_the_sql_backend(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(SchemaNotReadyError):
        Registry(backend=SqlBackend.from_url(url)).list_models()
    migrating = Registry(backend=SqlBackend.from_url(url, auto_migrate=True))
    assert migrating.list_models() == []
    migrating.close()
