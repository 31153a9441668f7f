"""Copying a registry database to another: SQLite -> PostgreSQL -> SQLite, ids aside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.db_reset import empty_registry_tables
from tests.move.conftest import read_export
from tests.servers.s3 import MotoServer, s3_bucket, s3_server
from tests.storage.test_s3 import make_storage

from crucible_model_registry import Registry
from crucible_model_registry.storage.local import LocalStorage

pytestmark = pytest.mark.postgres

__all__ = ["s3_bucket", "s3_server"]


def test_sqlite_to_postgresql_to_sqlite_gives_identical_exports(
    seeded: Registry, make_registry: Any, postgres_url: str, tmp_path: Path
):
    empty_registry_tables(postgres_url)
    team = Registry.from_url(postgres_url, storage=LocalStorage(tmp_path / "team-artifacts"))
    try:
        first = seeded.copy_to(team, with_artifacts=True)
        assert first.refused == []
        assert not seeded.copy_to(team, with_artifacts=True).changed
        back = make_registry("back")
        team.copy_to(back, with_artifacts=True)
        seeded.export_to(tmp_path / "source")
        team.export_to(tmp_path / "team")
        back.export_to(tmp_path / "back")
    finally:
        team.close()
    assert read_export(tmp_path / "team") == read_export(tmp_path / "source")
    assert read_export(tmp_path / "back") == read_export(tmp_path / "source")
    checkpoint = next(
        a for a in back.get_version("sft@1").artifacts if a.type.value == "checkpoint"
    )
    assert back.verify_artifact(checkpoint)
    assert (tmp_path / "team-artifacts" / checkpoint.storage_path).is_file()


@pytest.mark.s3
def test_copy_to_postgresql_and_s3_moves_verified_bytes(
    seeded: Registry, postgres_url: str, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
):
    empty_registry_tables(postgres_url)
    team = Registry.from_url(postgres_url, storage=make_storage(s3_server.endpoint_url, s3_bucket))
    try:
        report = seeded.copy_to(team, with_artifacts=True)
        assert report.refused == []
        sft1 = team.get_version("sft@1")
        assert {a.storage_backend for a in sft1.artifacts} == {"s3"}
        assert all(team.verify_artifact(a) for a in sft1.artifacts)
        tokenizer = next(a for a in sft1.artifacts if a.type.value == "tokenizer")
        out = team.download_artifact(tokenizer, tmp_path / "tok")
        assert (out / "vocab.txt").read_text() == "a b c"
        assert not seeded.copy_to(team, with_artifacts=True).changed
    finally:
        team.close()
