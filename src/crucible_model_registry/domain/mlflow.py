"""How an MLflow model registry maps onto ours (issue 17): plain values in, export lines out.

An MLflow registry is read into :class:`MlflowModel` / :class:`MlflowVersion` values (by
``_mlflow_source``, from its database or its REST API) and turned here into the
:class:`ModelBundle` that the export import applies, one model per transaction. The
mapping, field by field:

* registered model -> model of the same name (a model of another MLflow workspace than
  ``default`` becomes ``<workspace>/<name>``); description, creation and last-update
  times kept; MLflow tags, key -> value exactly, in ``Model.metadata["mlflow"]["tags"]``.
* model version -> version ``str(n)``: ``source``, ``run_id``, ``run_link``, ``status``,
  ``status_message``, ``user_id`` and the tags (key -> value) in
  ``ModelVersion.metadata["mlflow"]``; description, creation and last-update times kept.
* our required fields: recipe ``mlflow``, base model ``unknown`` (MLflow records none),
  training config ``{"mlflow": {"model", "version", "run_id", "source"}}``. MLflow lets
  one run be registered as several versions, which our deduplication would refuse; the
  policy is that every MLflow version comes over: its config names the MLflow version it
  was, so no two imported versions share a config hash, and the run id stays queryable.
  Deduplication keeps its full force for everything registered here afterwards.
* stages None/Staging/Production/Archived -> experiment/staging/production/archived:
  the registration is a history entry at the creation time, the current stage (if not
  None) a second one at MLflow's last-update time (MLflow keeps no stage history).
* aliases -> aliases, with one alias-history entry each at the later of the version's
  creation and the model's last update (MLflow records no alias times).

What cannot be mapped is reported with a reason and left out: a model whose name our
rules refuse (its versions with it), an MLflow prompt (a registered model tagged
``mlflow.prompt.is_prompt=true``), an alias our alias rules refuse or that points at a
missing version.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crucible_model_registry.domain.config_hash import canonical_json, hash_config
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.exchange import ImportConflict, ImportReport, ModelBundle
from crucible_model_registry.domain.exchange import format_time as _iso
from crucible_model_registry.domain.records import to_jsonable
from crucible_model_registry.domain.rules import check_alias_name, check_model_name
from crucible_model_registry.errors import ValidationError

__all__ = [
    "BASE_MODEL",
    "DEFAULT_WORKSPACE",
    "PROMPT_TAG",
    "RECIPE",
    "STAGES",
    "MlflowImportReport",
    "MlflowModel",
    "MlflowVersion",
    "bundle_for",
    "from_millis",
    "our_model_name",
    "training_config",
    "wanted",
]

RECIPE = "mlflow"
BASE_MODEL = "unknown"
DEFAULT_WORKSPACE = "default"
PROMPT_TAG = "mlflow.prompt.is_prompt"

STAGES: Mapping[str, Stage] = {
    "none": Stage.EXPERIMENT,
    "staging": Stage.STAGING,
    "production": Stage.PRODUCTION,
    "archived": Stage.ARCHIVED,
}
"""MLflow's stage names (compared in lower case) -> ours."""


@dataclasses.dataclass(frozen=True, slots=True)
class MlflowVersion:
    """One MLflow model version as its registry holds it (times in epoch milliseconds)."""

    version: int
    creation_time: int | None
    last_updated_time: int | None
    description: str | None = None
    user_id: str | None = None
    current_stage: str | None = None
    source: str | None = None
    run_id: str | None = None
    status: str | None = None
    status_message: str | None = None
    run_link: str | None = None
    storage_location: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class MlflowModel:
    """One MLflow registered model with its versions, tags and aliases (alias -> version)."""

    name: str
    creation_time: int | None
    last_updated_time: int | None
    description: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    aliases: dict[str, int] = dataclasses.field(default_factory=dict)
    versions: list[MlflowVersion] = dataclasses.field(default_factory=list)
    workspace: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MlflowImportReport:
    """What ``import_mlflow`` did (or, with ``dry_run``, would do).

    ``imported`` / ``skipped`` / ``conflicts`` count lines per kind as an export import
    does (``skipped``: here already with the same content); ``refused`` says why a conflict
    was refused; ``unmapped`` lists what has no place in this registry, with the reason.
    """

    source: str
    models_read: int
    versions_read: int
    imported: dict[str, int]
    skipped: dict[str, int]
    conflicts: dict[str, int]
    refused: list[ImportConflict]
    refused_models: list[str]
    unmapped: list[ImportConflict]
    dry_run: bool
    changed: bool
    """Did (would) the import write anything? False for a repeated import."""

    @classmethod
    def of(
        cls,
        report: ImportReport,
        *,
        source: str,
        models_read: int,
        versions_read: int,
        unmapped: Sequence[ImportConflict],
    ) -> MlflowImportReport:
        """The import report of the bundles, with what was read and what was left out."""
        return cls(
            source=source,
            models_read=models_read,
            versions_read=versions_read,
            imported=report.imported,
            skipped=report.skipped,
            conflicts=report.conflicts,
            refused=report.refused,
            refused_models=report.refused_models,
            unmapped=list(unmapped),
            dry_run=report.dry_run,
            changed=report.changed,
        )

    def to_dict(self) -> dict[str, Any]:
        """This report as plain JSON values."""
        result: dict[str, Any] = to_jsonable(self)
        return result


def from_millis(value: int | None, *, default: datetime | None = None) -> datetime:
    """An MLflow time (epoch milliseconds) as an aware UTC datetime."""
    if value is None:
        if default is None:
            raise ValueError("the time is missing")
        return default
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def our_model_name(model: MlflowModel) -> str:
    """The name the model gets here: its own, prefixed by a non-default workspace."""
    return _our_name(model.name, model.workspace)


def _our_name(name: str, workspace: str | None) -> str:
    if workspace and workspace != DEFAULT_WORKSPACE:
        return f"{workspace}/{name}"
    return name


def wanted(name: str, workspace: str | None, pattern: str | None) -> bool:
    """Does ``--models PATTERN`` (an fnmatch glob) select the model (MLflow's name or ours)?"""
    if pattern is None:
        return True
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(
        _our_name(name, workspace), pattern
    )


def training_config(name: str, version: MlflowVersion) -> dict[str, Any]:
    """The training config of an imported version: the MLflow version it was (see above)."""
    return {
        "mlflow": {
            "model": name,
            "version": version.version,
            "run_id": version.run_id,
            "source": version.source,
        }
    }


def _config_hash(config: dict[str, Any]) -> str:
    """``hash_config(config)``, a third of the import's time, skipped where it can be:
    ASCII text is NFC already and the values are plain JSON, so the canonical JSON of the
    config as it is hashes the same."""
    values = config["mlflow"].values()
    if all(v is None or type(v) is int or (type(v) is str and v.isascii()) for v in values):
        return hashlib.sha256(canonical_json(config)).hexdigest()
    return hash_config(config)


def _version_metadata(version: MlflowVersion) -> dict[str, Any]:
    return {
        "mlflow": {
            "tags": dict(version.tags),
            "source": version.source,
            "run_id": version.run_id,
            "run_link": version.run_link,
            "status": version.status,
            "status_message": version.status_message,
            "user_id": version.user_id,
        }
    }


def bundle_for(model: MlflowModel) -> tuple[ModelBundle | None, list[ImportConflict]]:
    """The model's lines in the export form, and what of it cannot be mapped (why).

    The bundle is None when the model itself cannot be mapped.
    """
    name = our_model_name(model)
    unmapped: list[ImportConflict] = []
    if model.tags.get(PROMPT_TAG, "").lower() == "true":
        reason = f"an MLflow prompt ({PROMPT_TAG}=true), not a model"
        return None, [ImportConflict("models", name, name, reason)]
    try:
        check_model_name(name)
    except ValidationError as exc:
        return None, [ImportConflict("models", name, name, f"the name is refused here: {exc}")]
    created = from_millis(model.creation_time, default=datetime.fromtimestamp(0, UTC))
    updated = from_millis(model.last_updated_time, default=created)
    versions = sorted(model.versions, key=lambda v: v.version)
    model_line: dict[str, Any] = {
        "name": name,
        "description": model.description,
        "tags": [],
        "metadata": {"mlflow": {"tags": dict(model.tags)}},
        "version_seq": max((v.version for v in versions), default=0),
        "created_at": _iso(created),
        "updated_at": _iso(max(updated, created)),
    }
    if model.workspace and model.workspace != DEFAULT_WORKSPACE:
        model_line["metadata"]["mlflow"]["workspace"] = model.workspace
    version_lines: list[dict[str, Any]] = []
    transitions: list[dict[str, Any]] = []
    by_number: dict[int, datetime] = {}
    for version in versions:
        stage = STAGES.get((version.current_stage or "None").lower())
        ref = f"{name}@{version.version}"
        if stage is None:
            reason = f"its MLflow stage {version.current_stage!r} is not one of {list(STAGES)}"
            unmapped.append(ImportConflict("versions", name, ref, reason))
            continue
        v_created = from_millis(version.creation_time, default=created)
        v_updated = max(from_millis(version.last_updated_time, default=v_created), v_created)
        by_number[version.version] = v_created
        config = training_config(model.name, version)
        config_hash = _config_hash(config)
        version_lines.append(
            {
                "model": name,
                "version": str(version.version),
                "stage": stage.value,
                "recipe": RECIPE,
                "base_model": BASE_MODEL,
                "config_hash": config_hash,
                "training_config": config,
                "metrics": {},
                "tags": [],
                "description": version.description,
                "metadata": _version_metadata(version),
                "created_at": _iso(v_created),
                "updated_at": _iso(v_updated),
            }
        )
        actor = version.user_id or None
        transitions.append(
            {
                "model": name,
                "version": str(version.version),
                "from_stage": None,
                "to_stage": Stage.EXPERIMENT.value,
                "reason": "registered in MLflow",
                "actor": actor,
                "at": _iso(v_created),
            }
        )
        if stage is not Stage.EXPERIMENT:
            transitions.append(
                {
                    "model": name,
                    "version": str(version.version),
                    "from_stage": Stage.EXPERIMENT.value,
                    "to_stage": stage.value,
                    "reason": f"MLflow stage {version.current_stage} at import",
                    "actor": None,
                    "at": _iso(v_updated),
                }
            )
    aliases: list[dict[str, Any]] = []
    alias_changes: list[dict[str, Any]] = []
    for alias, number in sorted(model.aliases.items()):
        ref = f"{name}@{alias}"
        if number not in by_number:
            reason = f"points at version {number}, which is not imported"
            unmapped.append(ImportConflict("aliases", name, ref, reason))
            continue
        try:
            check_alias_name(alias)
        except ValidationError as exc:
            unmapped.append(ImportConflict("aliases", name, ref, f"refused here: {exc}"))
            continue
        at = _iso(max(by_number[number], updated))
        aliases.append({"model": name, "alias": alias, "version": str(number), "updated_at": at})
        alias_changes.append(
            {
                "model": name,
                "alias": alias,
                "version": str(number),
                "reason": "MLflow alias at import",
                "actor": None,
                "at": at,
            }
        )
    bundle = ModelBundle(
        model_line,
        {
            "versions": version_lines,
            "stage_transitions": transitions,
            "aliases": aliases,
            "alias_changes": alias_changes,
        },
    )
    return bundle, unmapped
