"""``import_mlflow`` / ``cmr import mlflow`` from MLflow registries that MLflow itself wrote.

The MLflow side is made by an unmodified ``MlflowClient`` over MLflow's own store and
migrations, as a SQLite file and as a PostgreSQL database; our side is the ``registry``
fixture (SQLite and PostgreSQL). What MLflow's client reads back is the oracle.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData as SaMetaData
from sqlalchemy import create_engine, insert, text
from tests.cli.runner import Runner
from tests.move.conftest import read_export
from tests.move.mlflow_registry import create_pre_workspace_schema, fill_mlflow, mlflow_view

from crucible_model_registry import (
    AuthenticationError,
    NotFoundError,
    Registry,
    Stage,
    ValidationError,
)
from crucible_model_registry.domain.mlflow import MlflowImportReport
from crucible_model_registry.storage.local import LocalStorage

STAGES = {
    "None": Stage.EXPERIMENT,
    "Staging": Stage.STAGING,
    "Production": Stage.PRODUCTION,
    "Archived": Stage.ARCHIVED,
}
MAPPED = ["churn", "churn-eu", "fraud-detector"]


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _client_url(url: str) -> str:
    # MLflow's client needs a driver it has; ours reads postgresql:// with psycopg 3.
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def assert_matches_mlflow(registry: Registry, url: str) -> None:
    """Our registry holds MLflow's models field by field, as MLflow's own client reads them."""
    view = mlflow_view(_client_url(url))
    assert sorted(m.name for m in registry.list_models()) == MAPPED
    for name in MAPPED:
        model, versions = view[name]
        ours = registry.get_model(name)
        assert ours.description == (model.description or None)
        assert ours.metadata["mlflow"]["tags"] == model.tags
        assert ours.created_at == ms(model.creation_timestamp)
        assert ours.updated_at == ms(model.last_updated_timestamp)
        listed = registry.query({"model_name": name})
        assert sorted(v.version for v in listed) == sorted(str(n) for n in versions)
        for number, mv in versions.items():
            v = registry.get_version(f"{name}@{number}")
            meta = v.metadata["mlflow"]
            assert meta["tags"] == mv.tags
            assert meta["source"] == mv.source
            assert meta["run_id"] == (mv.run_id or None)
            assert meta["status"] == mv.status
            assert meta["user_id"] == (mv.user_id or None)
            assert v.description == (mv.description or None)
            assert v.stage is STAGES[mv.current_stage]
            assert v.created_at == ms(mv.creation_timestamp)
            assert v.updated_at == ms(mv.last_updated_timestamp)
            assert v.training_config["mlflow"]["run_id"] == (mv.run_id or None)
            history = [(t.from_stage, t.to_stage, t.at) for t in registry.stage_history(v)]
            expected = [(None, Stage.EXPERIMENT, ms(mv.creation_timestamp))]
            if v.stage is not Stage.EXPERIMENT:
                expected.append((Stage.EXPERIMENT, v.stage, ms(mv.last_updated_timestamp)))
            assert history == expected
        for alias, number in model.aliases.items():
            if alias == "production":  # a stage name here: reported, not imported
                with pytest.raises(NotFoundError):
                    registry.get_version(f"{name}@{alias}")
                continue
            assert registry.get_version(f"{name}@{alias}").version == str(number)


def _unmapped(report: MlflowImportReport) -> set[tuple[str, str]]:
    return {(item.kind, item.ref) for item in report.unmapped}


# --------------------------------------------------------------------------- tests


def test_import_matches_mlflow_field_by_field(registry: Registry, mlflow_url: str):
    report = registry.import_mlflow(mlflow_url)
    assert report.refused == []
    assert report.models_read == 5
    assert report.imported["models"] == 3
    assert report.imported["versions"] == 5  # churn 1-3, churn-eu 2 (1 is deleted), fraud 1
    assert report.imported["aliases"] == 3
    assert_matches_mlflow(registry, mlflow_url)
    # Numbering continues after MLflow's numbers.
    nxt = registry.register(model_name="churn-eu", recipe="r", base_model="b", training_config={})
    assert nxt.version == "3"


def test_one_run_in_two_versions_both_come_over(registry: Registry, mlflow_sqlite: str):
    registry.import_mlflow(mlflow_sqlite)
    first, second = registry.get_version("churn@1"), registry.get_version("churn@2")
    assert first.metadata["mlflow"]["run_id"] == second.metadata["mlflow"]["run_id"]
    assert first.config_hash != second.config_hash
    assert (first.recipe, first.base_model) == ("mlflow", "unknown")
    # Deduplication still holds for what is registered here afterwards.
    again = registry.register(
        model_name="elsewhere",
        recipe=first.recipe,
        base_model=first.base_model,
        training_config=first.training_config,
        on_duplicate="return",
    )
    assert again.id == first.id


def test_what_cannot_be_mapped_is_reported(registry: Registry, mlflow_sqlite: str):
    report = registry.import_mlflow(mlflow_sqlite)
    assert _unmapped(report) == {
        ("models", "bad name"),
        ("models", "summarise-prompt"),
        ("aliases", "fraud-detector@production"),
    }
    reasons = {item.ref: item.reason for item in report.unmapped}
    assert "prompt" in reasons["summarise-prompt"]
    assert sorted(m.name for m in registry.list_models()) == MAPPED
    assert registry.get_version("fraud-detector@blue").version == "1"


def test_second_run_imports_nothing(registry: Registry, mlflow_url: str, tmp_path: Path):
    first = registry.import_mlflow(mlflow_url)
    registry.export_to(tmp_path / "after-first")
    audited = registry.audit_log(action="import")
    assert sorted(entry.target for entry in audited) == MAPPED  # one entry per model
    second = registry.import_mlflow(mlflow_url)
    assert len(registry.audit_log(action="import")) == len(audited)
    assert first.changed
    assert not second.changed
    assert sum(second.imported.values()) == 0
    assert second.skipped == first.imported
    assert second.refused == []
    registry.export_to(tmp_path / "after-second")
    assert read_export(tmp_path / "after-second") == read_export(tmp_path / "after-first")


def test_interrupted_import_resumes_to_the_same_result(
    registry: Registry, make_registry: Any, mlflow_sqlite: str, tmp_path: Path
):
    calls: list[tuple[int, int]] = []

    def interrupt_after_churn(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 2:  # "bad name" (not mapped), then churn: stop there
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.import_mlflow(mlflow_sqlite, progress=interrupt_after_churn)
    assert [m.name for m in registry.list_models()] == ["churn"]
    resumed = registry.import_mlflow(mlflow_sqlite)
    assert resumed.skipped["versions"] == 3
    assert resumed.imported["versions"] == 2
    assert resumed.imported["models"] == 2
    clean = make_registry("clean")
    clean.import_mlflow(mlflow_sqlite)
    registry.export_to(tmp_path / "resumed")
    clean.export_to(tmp_path / "clean")
    assert read_export(tmp_path / "resumed") == read_export(tmp_path / "clean")
    assert_matches_mlflow(registry, mlflow_sqlite)


@pytest.mark.slow
def test_killed_import_resumes_to_the_same_result(
    make_registry: Any, mlflow_sqlite: str, sqlite_template: Path, tmp_path: Path
):
    fill_mlflow(mlflow_sqlite, 4000, 20, prefix="bulk")
    ours = tmp_path / "ours.db"
    shutil.copyfile(sqlite_template, ours)
    url = f"sqlite:///{ours}"
    cmr = str(Path(sys.executable).with_name("cmr"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env["CMR_HOME"] = str(tmp_path / "home")
    process = subprocess.Popen(
        [cmr, "--database-url", url, "import", "mlflow", "--from", mlflow_sqlite],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM cmr_models")).scalar_one() >= 2:
                    process.kill()  # mid-run, most likely inside a model's transaction
                    break
            time.sleep(0.005)
        process.wait()
        with engine.connect() as conn:
            models = conn.execute(text("SELECT count(*) FROM cmr_models")).scalar_one()
    finally:
        engine.dispose()
    assert process.returncode != 0, "the import finished before it could be killed"
    assert 2 <= models < 23  # 20 bulk models and 3 of the test registry's could come over
    resumed_registry = Registry.from_url(url, storage=LocalStorage(tmp_path / "killed-files"))
    try:
        resumed = resumed_registry.import_mlflow(mlflow_sqlite)
        assert resumed.skipped["models"] == models
        assert resumed.imported["models"] == 23 - models
        clean = make_registry("clean")
        clean.import_mlflow(mlflow_sqlite)
        resumed_registry.export_to(tmp_path / "resumed")
        clean.export_to(tmp_path / "clean")
        assert read_export(tmp_path / "resumed") == read_export(tmp_path / "clean")
    finally:
        resumed_registry.close()


def test_models_glob_selects_models(registry: Registry, mlflow_sqlite: str):
    report = registry.import_mlflow(mlflow_sqlite, models="churn*")
    assert report.models_read == 2
    assert sorted(m.name for m in registry.list_models()) == ["churn", "churn-eu"]
    assert report.unmapped == []
    rest = registry.import_mlflow(mlflow_sqlite, models="fraud-*")
    assert rest.imported["models"] == 1
    assert sorted(m.name for m in registry.list_models()) == ["churn", "churn-eu", "fraud-detector"]
    none = registry.import_mlflow(mlflow_sqlite, models="nothing-*")
    assert (none.models_read, none.changed) == (0, False)


def test_dry_run_writes_nothing(registry: Registry, mlflow_sqlite: str, tmp_path: Path):
    dry = registry.import_mlflow(mlflow_sqlite, dry_run=True, copy_artifacts=True)
    assert dry.dry_run
    assert dry.changed
    assert registry.list_models() == []
    registry.export_to(tmp_path / "empty")
    assert all(lines == [] for lines in read_export(tmp_path / "empty").values())
    assert not any((tmp_path / "artifacts").rglob("*"))
    real = registry.import_mlflow(mlflow_sqlite)
    assert {k: v for k, v in real.imported.items() if k != "artifacts"} == {
        k: v for k, v in dry.imported.items() if k != "artifacts"
    }
    assert dry.imported["artifacts"] == 5


def test_copy_artifacts_stores_verified_bytes(
    registry: Registry, mlflow_sqlite: str, mlflow_files: Path
):
    report = registry.import_mlflow(mlflow_sqlite, copy_artifacts=True)
    assert report.imported["artifacts"] == 4  # churn 1-3, churn-eu 2
    assert _unmapped(report) >= {("artifacts", "fraud-detector@1")}
    weights = mlflow_files.parent / f"{mlflow_files.name}-model" / "weights.bin"
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    for ref in ("churn@1", "churn@2", "churn@3", "churn-eu@2"):
        (artifact,) = registry.get_version(ref).artifacts
        assert artifact.type.value == "checkpoint"
        files = {entry["path"]: entry["sha256"] for entry in artifact.manifest or []}
        assert files["weights.bin"] == expected
        assert registry.verify_artifact(artifact)
    # The source stays in the metadata; a second run copies nothing again.
    assert registry.get_version("churn@1").metadata["mlflow"]["source"].startswith("runs:/")
    again = registry.import_mlflow(mlflow_sqlite, copy_artifacts=True)
    assert again.imported["artifacts"] == 0
    assert again.skipped["artifacts"] == 4


def test_without_copy_only_the_source_is_kept(registry: Registry, mlflow_sqlite: str):
    registry.import_mlflow(mlflow_sqlite)
    version = registry.get_version("fraud-detector@1")
    assert version.artifacts == []
    assert version.metadata["mlflow"]["source"] == "s3://elsewhere/fraud/model"


def test_a_database_without_mlflow_tables_is_refused(registry: Registry, tmp_path: Path):
    other = tmp_path / "other.db"
    engine = create_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE things (id INTEGER)"))
    engine.dispose()
    with pytest.raises(ValidationError) as caught:
        registry.import_mlflow(f"sqlite:///{other}")
    assert "uri" in caught.value.errors
    assert registry.list_models() == []
    with pytest.raises(ValidationError):
        registry.import_mlflow("mlflow.db")  # neither a URL nor a server
    assert registry.list_models() == []


def test_a_server_that_is_not_mlflow_is_refused(registry: Registry, hub_server: Any):
    # The Hub double refuses an unknown token, then answers 404 to MLflow's routes.
    with pytest.raises(AuthenticationError) as refused:
        registry.import_mlflow(hub_server.endpoint, token="not-logged")
    assert "not-logged" not in str(refused.value)
    with pytest.raises(ValidationError) as caught:
        registry.import_mlflow(hub_server.endpoint, token=hub_server.token)
    assert "uri" in caught.value.errors
    assert hub_server.token not in str(caught.value)
    assert registry.list_models() == []


def test_schema_without_workspace_columns(registry: Registry, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    create_pre_workspace_schema(url)
    engine = create_engine(url)
    meta = SaMetaData()
    meta.reflect(engine)
    assert "workspace" not in meta.tables["model_versions"].c
    with engine.begin() as conn:
        conn.execute(
            insert(meta.tables["registered_models"]),
            {
                "name": "old",
                "creation_time": 1_600_000_000_000,
                "last_updated_time": 1_600_000_500_000,
            },
        )
        conn.execute(
            insert(meta.tables["model_versions"]),
            {
                "name": "old",
                "version": 1,
                "creation_time": 1_600_000_100_000,
                "last_updated_time": 1_600_000_200_000,
                "current_stage": "Staging",
                "source": "file:///nowhere",
                "status": "READY",
            },
        )
        conn.execute(
            insert(meta.tables["model_version_tags"]),
            {"name": "old", "version": 1, "key": "k", "value": "v"},
        )
        conn.execute(
            insert(meta.tables["registered_model_aliases"]),
            {"name": "old", "alias": "best", "version": 1},
        )
    engine.dispose()
    report = registry.import_mlflow(url)
    assert report.imported["versions"] == 1
    version = registry.get_version("old@best")
    assert (version.version, version.stage) == ("1", Stage.STAGING)
    assert version.metadata["mlflow"]["tags"] == {"k": "v"}
    assert version.created_at == ms(1_600_000_100_000)
    assert "workspace" not in registry.get_model("old").metadata["mlflow"]


# --------------------------------------------------------------------------- the CLI


def test_cli_imports_once_then_says_nothing_to_do(
    cmr: Runner, seeded_home: Path, mlflow_sqlite: str
):
    dry = cmr("import", "mlflow", "--from", mlflow_sqlite, "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["dry_run"] is True
    assert cmr("models", "--json").json() == []
    first = cmr("import", "mlflow", "--from", mlflow_sqlite, "--models", "churn*")
    assert first.code == 0, first.stderr
    assert "Imported" in first.stdout
    shown = cmr("show", "churn@champion", "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["metadata"]["mlflow"]["tags"]["validated"] == "true"
    again = cmr("import", "mlflow", "--from", mlflow_sqlite, "--models", "churn*", "--json")
    assert again.code == 0, again.stderr
    assert again.json()["changed"] is False
    rest = cmr("import", "mlflow", "--from", mlflow_sqlite)
    assert rest.code == 0, rest.stderr
    assert "could not map models bad name" in rest.stdout
    bad = cmr("import", "mlflow", "--from", "not-a-uri")
    assert bad.code == 1
    assert "Traceback" not in bad.stderr
    remote = cmr("--server", "http://127.0.0.1:9", "import", "mlflow", "--from", mlflow_sqlite)
    assert remote.code == 1
    assert "needs a SQL database" in remote.stderr
