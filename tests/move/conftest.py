"""Fixtures for moving registries: a registry with a bit of everything, and export helpers."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.cli.conftest import cmr, home, home_registry, seeded_home
from tests.move.mlflow_registry import populate
from tests.pg_names import database_name
from tests.servers.hub import hub_repo, hub_server

from crucible_model_registry import PromotionPolicy, Registry
from crucible_model_registry.storage.local import LocalStorage

__all__ = ["cmr", "home", "home_registry", "hub_repo", "hub_server", "seeded_home"]


def seed(registry: Registry, tmp: Path) -> None:
    """Models, versions, artifacts, lineage (across models, parent in a later model), stage
    and alias history, a deleted version's history, and a promotion policy."""
    consumer = registry.register(
        model_name="zeta-consumer", recipe="eval", base_model="none", training_config={"k": 0}
    )
    base = registry.register(
        model_name="base",
        version="1.0",
        recipe="pretrain",
        base_model="scratch",
        training_config={"lr": 3e-4},
        metrics={"loss": 1.25, "accuracy": 0.5},
        tags=["base", "pt"],
        description="the base",
    )
    registry.update_model("base", description="base models", tags=["family"], metadata={"k": 1})
    sft1 = registry.register(
        model_name="sft",
        recipe="sft",
        base_model="base",
        training_config={"lr": 1e-4},
        metrics={"accuracy": 0.9},
        parents=[base],
        lineage_type="fine_tune",
    )
    sft2 = registry.register(
        model_name="sft",
        recipe="sft",
        base_model="base",
        training_config={"lr": 2e-4},
        parents=[sft1],
        lineage_type="distillation",
        artifacts=[
            {"type": "other", "storage_backend": "s3", "storage_path": "s3://elsewhere/x.bin"}
        ],
    )
    doomed = registry.register(
        model_name="sft", recipe="sft", base_model="base", training_config={"lr": 3e-4}
    )
    blob = tmp / "weights.bin"
    blob.write_bytes(b"weights" * 1000)
    registry.upload_artifact(sft1, "checkpoint", blob)
    tree = tmp / "tokenizer"
    (tree / "sub").mkdir(parents=True)
    (tree / "vocab.txt").write_text("a b c")
    (tree / "sub" / "merges.txt").write_text("ab")
    registry.upload_artifact(sft1, "tokenizer", tree)
    registry.promote(sft1, "staging", reason="evals")
    registry.promote(sft1, "production", reason="ship it")
    registry.set_alias(doomed, "champion", reason="first")
    registry.set_alias(sft2, "champion", reason="better")
    registry.set_alias(sft1, "stable")
    registry.delete_alias("sft", "stable", reason="gone")
    registry.set_promotion_policy(
        "sft", PromotionPolicy(allowed={"production": ["staging"]}, exclusive=["production"])
    )
    registry.delete_version(doomed, force=True)
    # The parent's model was created after the child's: the import must defer this edge.
    registry.add_lineage(sft2, consumer, relationship="distilled_from")


def read_export(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every JSON Lines file of an export, ids aside: deleted versions' old ids dropped."""
    out: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(path.glob("*.jsonl")):
        lines = [json.loads(raw) for raw in file.read_text().splitlines()]
        for line in lines:
            line.pop("deleted_version_id", None)
            line.pop("file", None)
        out[file.stem] = lines
    return out


def rewrite_manifest(path: Path) -> None:
    """Recompute the manifest's SHA-256s, as an export written that way would have them."""
    manifest = json.loads((path / "manifest.json").read_text())
    for rel, entry in manifest["files"].items():
        data = (path / rel).read_bytes()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entry["size_bytes"] = len(data)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[Any]:
    """Fresh embedded-style SQLite registries with local storage: ``make_registry("b")``."""
    made: list[Registry] = []

    def make(name: str) -> Registry:
        registry = Registry.from_url(
            f"sqlite:///{tmp_path / (name + '.db')}",
            storage=LocalStorage(tmp_path / f"{name}-artifacts"),
            auto_migrate=True,
        )
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close()


@pytest.fixture
def seeded(make_registry: Any, tmp_path: Path) -> Registry:
    """A SQLite registry holding :func:`seed`'s data."""
    registry = make_registry("source")
    files = tmp_path / "files"
    files.mkdir()
    seed(registry, files)
    return registry


# --------------------------------------------------------------------------- MLflow registries


@pytest.fixture(scope="session")
def mlflow_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "artifacts"


@pytest.fixture(scope="session")
def mlflow_sqlite_template(mlflow_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlflow-db") / "mlflow.db"
    populate(f"sqlite:///{path}", mlflow_files)
    return path


@pytest.fixture
def mlflow_sqlite(mlflow_sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def mlflow_postgres(postgres_server: str, mlflow_files: Path) -> Iterator[str]:
    """An MLflow registry in its own PostgreSQL database (MLflow's URL form: no driver)."""
    name = database_name("mlflow")
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server).set(database=name)
    populate(url.render_as_string(hide_password=False), mlflow_files / "pg")
    try:
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def mlflow_url(request: pytest.FixtureRequest) -> str:
    """An MLflow registry written by MLflow: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("mlflow_sqlite"))
    return str(request.getfixturevalue("mlflow_postgres"))
