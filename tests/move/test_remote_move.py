"""Export and import through a registry server (a real ``cmr serve``), on SQLite and PostgreSQL.

The server's database is seeded (and inspected) in process, over the server's own database
and storage; every export and import goes over HTTP, through ``RemoteRegistry``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.runner import Runner
from tests.move.conftest import read_export, seed
from tests.servers.registry_server import (
    RegistryServer,
    remote_server_postgres,
    remote_server_sqlite,
)

from crucible_model_registry import Registry
from crucible_model_registry.registry import RemoteRegistry
from crucible_model_registry.storage.local import LocalStorage

__all__ = ["remote_server_postgres", "remote_server_sqlite"]


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def server(request: pytest.FixtureRequest) -> RegistryServer:
    """A running ``cmr serve`` with an empty registry."""
    found: RegistryServer = request.getfixturevalue(f"remote_server_{request.param}")
    found.reset()
    return found


@pytest.fixture
def behind(server: RegistryServer) -> Iterator[Registry]:
    """The server's registry in this process: its database and its storage."""
    registry = Registry.from_url(server.database_url, storage=LocalStorage(server.storage_dir))
    yield registry
    registry.close()


@pytest.fixture
def remote(server: RegistryServer) -> Iterator[RemoteRegistry]:
    registry = RemoteRegistry(server.url, token=server.token)
    yield registry
    registry.close()


def test_export_through_the_server_is_the_local_export(
    behind: Registry, remote: RemoteRegistry, tmp_path: Path
):
    files = tmp_path / "files"
    files.mkdir()
    seed(behind, files)
    behind.export_to(tmp_path / "local")
    seen: list[tuple[int, int]] = []
    result = remote.export_to(tmp_path / "remote", progress=lambda d, t: seen.append((d, t)))
    assert result.counts["versions"] == 4
    assert read_export(tmp_path / "remote") == read_export(tmp_path / "local")
    assert seen[-1] == (4, 4)
    only = remote.export_to(tmp_path / "sft", models="sf*")
    assert only.counts["models"] == 1
    assert {line["model"] for line in read_export(tmp_path / "sft")["versions"]} == {"sft"}


def test_export_with_artifact_bytes_through_the_server(
    behind: Registry, remote: RemoteRegistry, make_registry, tmp_path: Path
):
    files = tmp_path / "files"
    files.mkdir()
    seed(behind, files)
    result = remote.export_to(tmp_path / "b", with_artifacts=True)
    assert result.artifact_bytes > 0
    # The bytes came through the server: a registry of its own takes them, verified.
    target = make_registry("target")
    report = target.import_from(tmp_path / "b")
    assert report.refused == []
    checkpoint = next(
        a for a in target.get_version("sft@1").artifacts if a.type.value == "checkpoint"
    )
    assert (
        target.download_artifact(checkpoint, tmp_path / "w.bin").read_bytes() == b"weights" * 1000
    )
    assert target.verify_artifact(checkpoint)


def test_import_through_the_server_twice(
    seeded: Registry, behind: Registry, remote: RemoteRegistry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    first = remote.import_from(tmp_path / "a")
    assert first.refused == []
    assert first.imported["versions"] == 4
    assert first.imported["lineage_edges"] == 3  # one deferred: its parent's model came later
    second = remote.import_from(tmp_path / "a")
    assert not second.changed
    assert second.skipped == first.imported
    behind.export_to(tmp_path / "b")
    assert read_export(tmp_path / "b") == read_export(tmp_path / "a")
    assert [v.ref for v in remote.get_ancestors("zeta-consumer@1")] == [
        "sft@2",
        "sft@1",
        "base@1.0",
    ]


def test_a_dry_run_through_the_server_writes_nothing(
    seeded: Registry, behind: Registry, remote: RemoteRegistry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    dry = remote.import_from(tmp_path / "a", dry_run=True)
    assert dry.dry_run
    assert dry.imported["versions"] == 4
    assert behind.list_models() == []


def test_a_conflict_through_the_server_is_refused_and_changes_nothing(
    seeded: Registry, behind: Registry, remote: RemoteRegistry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    behind.register(
        model_name="sft",
        version="1",
        recipe="other",
        base_model="x",
        training_config={"other": True},
    )
    behind.export_to(tmp_path / "before")
    report = remote.import_from(tmp_path / "a")
    assert "sft" in report.refused_models
    assert any(c.kind == "versions" and c.ref == "sft@1" for c in report.refused)
    assert {m.name for m in behind.list_models()} == {"sft", "base", "zeta-consumer"}
    assert behind.get_version("sft@1").recipe == "other"
    assert [v.version for v in behind.query({"model_name": "sft"})] == ["1"]


def test_artifact_bytes_cannot_be_imported_through_the_server(
    seeded: Registry, behind: Registry, remote: RemoteRegistry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a", with_artifacts=True)
    report = remote.import_from(tmp_path / "a")
    assert report.refused_models == ["sft"]  # the model whose artifacts carry bytes
    assert "import it on the server's host" in report.refused[0].reason
    assert "sft" not in {m.name for m in behind.list_models()}
    assert behind.check().ok


def test_cli_export_and_import_through_the_server(
    cmr: Runner, seeded: Registry, behind: Registry, server: RegistryServer, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    login = ("--server", server.url, "--token", server.token)
    imported = cmr(*login, "import", str(tmp_path / "a"), "--json")
    assert imported.code == 0, imported.stderr
    assert imported.json()["imported"]["versions"] == 4
    exported = cmr(*login, "export", str(tmp_path / "b"), "--json")
    assert exported.code == 0, exported.stderr
    assert exported.json()["counts"]["versions"] == 4
    assert read_export(tmp_path / "b") == read_export(tmp_path / "a")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["source_dialect"] == behind.engine.dialect.name
