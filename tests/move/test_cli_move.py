"""The real `cmr`: export, import (SRC and hf) and db copy, in a subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.cli.runner import Runner, assert_user_error
from tests.db_reset import empty_registry_tables
from tests.move.conftest import read_export, seed
from tests.move.test_import_hf import _publish
from tests.servers.hub import HubDouble

from crucible_model_registry import Registry


@pytest.fixture
def other_db(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "other.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def seeded_cli(home_registry: Registry, home: Path) -> Path:
    files = home / "files"
    files.mkdir()
    seed(home_registry, files)
    return home


def test_export_then_import_twice(cmr: Runner, seeded_cli: Path, other_db: str, tmp_path: Path):
    dest = tmp_path / "backup"
    exported = cmr("export", str(dest), "--with-artifacts", "--json")
    assert exported.code == 0, exported.stderr
    assert exported.json()["counts"]["versions"] == 4
    assert (dest / "manifest.json").is_file()
    first = cmr("--database-url", other_db, "import", str(dest), "--json")
    assert first.code == 0, first.stderr
    assert first.json()["imported"]["versions"] == 4
    assert first.json()["changed"] is True
    second = cmr("--database-url", other_db, "import", str(dest))
    assert second.code == 0, second.stderr
    assert "Nothing to import" in second.stdout
    again = cmr("--database-url", other_db, "export", str(tmp_path / "again"), "--json")
    assert again.code == 0, again.stderr
    assert read_export(tmp_path / "again") == read_export(dest)


def test_dry_run_writes_nothing(cmr: Runner, seeded_cli: Path, other_db: str, tmp_path: Path):
    assert cmr("export", str(tmp_path / "b")).code == 0
    dry = cmr("--database-url", other_db, "import", "--dry-run", str(tmp_path / "b"), "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["dry_run"] is True
    assert dry.json()["imported"]["models"] == 3
    listed = cmr("--database-url", other_db, "models", "--json")
    assert listed.json() == []


def test_conflicts_are_reported_and_exit_1(
    cmr: Runner, seeded_cli: Path, other_db: str, tmp_path: Path
):
    assert cmr("export", str(tmp_path / "b")).code == 0
    clash = cmr(
        "--database-url",
        other_db,
        "register",
        "sft",
        "--version",
        "1",
        "--recipe",
        "other",
        "--base-model",
        "base",
        "--json",
    )
    assert clash.code == 0, clash.stderr
    result = cmr("--database-url", other_db, "import", str(tmp_path / "b"), "--json")
    assert result.code == 1
    assert result.json()["refused_models"] == ["sft"]
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_a_tampered_export_is_a_user_error(
    cmr: Runner, seeded_cli: Path, other_db: str, tmp_path: Path
):
    assert cmr("export", str(tmp_path / "b")).code == 0
    (tmp_path / "b" / "models.jsonl").write_text("{}\n")
    assert_user_error(cmr("--database-url", other_db, "import", str(tmp_path / "b")))
    assert cmr("--database-url", other_db, "models", "--json").json() == []


def test_export_to_a_taken_path_is_a_user_error(cmr: Runner, seeded_cli: Path, tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    assert_user_error(cmr("export", str(tmp_path / "taken")))


def test_import_help_lists_the_hub_importer(cmr: Runner, home: Path):
    result = cmr("import", "--help")
    assert result.code == 0
    assert "hf" in result.stdout
    assert "SRC" in result.stdout


@pytest.mark.postgres
def test_db_copy_embedded_to_postgresql_with_bytes(
    cmr: Runner, seeded_cli: Path, postgres_url: str, tmp_path: Path
):
    empty_registry_tables(postgres_url)
    team_storage = json.dumps({"base_path": str(tmp_path / "team")})
    copied = cmr(
        "db",
        "copy",
        "--to",
        postgres_url,
        "--storage-to",
        "local",
        "--storage-to-options",
        team_storage,
        "--json",
    )
    assert copied.code == 0, copied.stdout + copied.stderr
    assert copied.json()["imported"]["artifacts"] == 3
    assert cmr("export", str(tmp_path / "source")).code == 0
    env = {"CMR_STORAGE_BACKEND": "local", "CMR_STORAGE_OPTIONS": team_storage}
    exported = cmr("--database-url", postgres_url, "export", str(tmp_path / "team-export"), env=env)
    assert exported.code == 0, exported.stderr
    assert read_export(tmp_path / "team-export") == read_export(tmp_path / "source")
    verified = cmr(
        "--database-url", postgres_url, "verify", "sft@1", "--type", "checkpoint", env=env
    )
    assert verified.code == 0, verified.stderr


@pytest.mark.hf
@pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)
def test_import_hf(cmr: Runner, seeded_home: Path, hub_server: HubDouble, hub_repo: str):
    _publish(hub_server, hub_repo, "sft")
    result = cmr(
        "import",
        "hf",
        hub_repo,
        "--endpoint",
        hub_server.endpoint,
        "--json",
        env={"HF_TOKEN": str(hub_server.token), "HF_HUB_DISABLE_XET": "1"},
    )
    assert result.code == 0, result.stderr
    [version] = result.json()
    assert version["model_name"] == hub_repo
    assert version["metrics"]["MMLU/accuracy"] == 61.5
