"""MLflow registries made by MLflow itself (its own store and migrations), for the importer's tests.

:func:`populate` writes the same registry through an unmodified ``MlflowClient`` into any
database MLflow supports; :func:`mlflow_view` reads it back through MLflow, the oracle the
tests compare our registry with field by field; :func:`fill_mlflow` adds many versions
with SQL, fast, into MLflow's tables. :func:`create_pre_workspace_schema`
builds MLflow's own schema as it was before the ``workspace`` columns (its migrations up to
the revision before ``1b5f0d9ad7c1``), for the importer's reflection of older databases.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, insert

T0_MS = 1_767_225_600_000  # 2026-01-01
MODELS = ["bad name", "churn", "churn-eu", "fraud-detector", "summarise-prompt"]
PRE_WORKSPACE_REVISION = "c8d9e0f1a2b3"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow warns about its own deprecations (stages); the suite turns warnings into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def client(url: str) -> Any:
    with quiet():
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=url, registry_uri=url)


def populate(url: str, files: Path) -> None:
    """The test registry: stages, aliases, odd tags, one run in two versions, a deleted
    version, a name we refuse, a prompt, an alias we refuse, files on disk and elsewhere."""
    c = client(url)
    with quiet():
        experiment = c.create_experiment("training", artifact_location=files.as_uri())
        run1 = c.create_run(experiment).info.run_id
        run2 = c.create_run(experiment).info.run_id
        model_dir = files.parent / f"{files.name}-model"
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "MLmodel").write_text("flavors: {python_function: {}}\n")
        (model_dir / "weights.bin").write_bytes(bytes(range(256)) * 64)
        c.log_artifacts(run1, str(model_dir), artifact_path="model")
        c.log_artifacts(run2, str(model_dir), artifact_path="model")

        c.create_registered_model(
            "churn",
            tags={"team": "data-science", "odd: key/ü": "line one\nline two é", "empty": ""},
            description="Predicts churn",
        )
        c.create_model_version(
            "churn",
            f"runs:/{run1}/model",
            run_id=run1,
            tags={"dataset": "2026-10", "note": "first"},
            description="first cut",
        )
        # The same run registered again: MLflow allows it, our dedup would not.
        c.create_model_version("churn", f"runs:/{run1}/model", run_id=run1)
        c.create_model_version("churn", f"runs:/{run2}/model", run_id=run2, tags={"k": "v"})
        c.transition_model_version_stage("churn", "1", "Archived")
        c.transition_model_version_stage("churn", "2", "Production")
        c.transition_model_version_stage("churn", "3", "Staging")
        c.set_registered_model_alias("churn", "champion", "2")
        c.set_registered_model_alias("churn", "challenger", "3")
        c.set_model_version_tag("churn", "2", "validated", "true")
        c.update_model_version("churn", "3", description="second run")

        c.create_registered_model("churn-eu")
        c.create_model_version("churn-eu", f"runs:/{run2}/model", run_id=run2)
        c.create_model_version("churn-eu", f"runs:/{run2}/model", run_id=run2)
        c.delete_model_version("churn-eu", "1")  # soft-deleted: not there for MLflow's users

        c.create_registered_model("fraud-detector", tags={"owner": "risk"})
        c.create_model_version("fraud-detector", "s3://elsewhere/fraud/model")
        c.set_registered_model_alias("fraud-detector", "production", "1")  # a stage name here
        c.set_registered_model_alias("fraud-detector", "blue", "1")

        c.create_registered_model("bad name")  # spaces: MLflow allows them, we do not
        c.create_model_version("bad name", "s3://elsewhere/bad")

        c.register_prompt("summarise-prompt", "Summarise {{ text }}")


def mlflow_view(url: str) -> dict[str, Any]:
    """Every model as MLflow's own client returns it: name -> (model, {version: mv})."""
    c = client(url)
    view: dict[str, Any] = {}
    with quiet():
        for name in MODELS:
            if name == "summarise-prompt":
                continue  # MLflow's client does not show prompts as models
            model = c.get_registered_model(name)
            versions = {int(v.version): v for v in c.search_model_versions(f"name = '{name}'")}
            view[name] = (model, versions)
    return view


def create_pre_workspace_schema(url: str) -> None:
    """MLflow's schema before workspaces: its initial tables, then its migrations up to
    :data:`PRE_WORKSPACE_REVISION`."""
    with quiet():
        from alembic import command
        from mlflow.store.db.utils import _get_alembic_config
        from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
        from sqlalchemy import create_engine

        engine = create_engine(url)
        try:
            InitialBase.metadata.create_all(engine)
            config = _get_alembic_config(str(engine.url))
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, PRE_WORKSPACE_REVISION)
        finally:
            engine.dispose()


def fill_mlflow(url: str, versions: int, models: int, prefix: str = "bench") -> None:
    """``versions`` versions over ``models`` models (``<prefix>-<i>``), written with SQL into
    MLflow's tables: two tags each, every tenth in Production, one alias per model."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(
        engine,
        only=[
            "registered_models",
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "registered_model_aliases",
        ],
    )
    t = meta.tables
    per_model = versions // models
    stages = ["None", "None", "Staging", "None", "None", "Archived", "None", "None", "None"]
    with engine.begin() as conn:
        for m in range(models):
            name = f"{prefix}-{m}"
            at = T0_MS + m * 1_000_000
            conn.execute(
                insert(t["registered_models"]),
                {"name": name, "creation_time": at, "last_updated_time": at + per_model * 10},
            )
            conn.execute(
                insert(t["registered_model_tags"]), {"name": name, "key": "team", "value": "ml"}
            )
            rows, tags = [], []
            for n in range(1, per_model + 1):
                rows.append(
                    {
                        "name": name,
                        "version": n,
                        "creation_time": at + n * 10,
                        "last_updated_time": at + n * 10 + 5,
                        "current_stage": "Production" if n % 10 == 0 else stages[n % 9],
                        "source": f"s3://bucket/{name}/{n}/model",
                        "run_id": f"{m:04d}{n:028d}",
                        "status": "READY",
                        "user_id": "trainer",
                    }
                )
                tags.append({"name": name, "version": n, "key": "shard", "value": str(n % 100)})
                tags.append({"name": name, "version": n, "key": "dataset", "value": "2026-10"})
            conn.execute(insert(t["model_versions"]), rows)
            conn.execute(insert(t["model_version_tags"]), tags)
            conn.execute(
                insert(t["registered_model_aliases"]),
                {"name": name, "alias": "champion", "version": per_model // 2},
            )
    engine.dispose()
