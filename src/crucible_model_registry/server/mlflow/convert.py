"""Our records in MLflow's JSON shapes, and MLflow's names (stages, version numbers) in ours.

The mapping, in one place (README "Coming from MLflow"):

- Stages: MLflow ``None``/``Staging``/``Production``/``Archived`` are our
  ``experiment``/``staging``/``production``/``archived`` (MLflow's names are accepted in
  any case, as MLflow's server does).
- Version numbers: a version whose version string is a plain positive integer below
  :data:`NUMBER_OFFSET` (every auto-numbered one: ``"1"``, ``"2"``, ...) has that number.
  Any other version string (``"1.0.0"``, ``"007"``) is shown as ``NUMBER_OFFSET + id``:
  stable (ids are never reused), unique, and never equal to a plain version's number, so
  an MLflow client sees e.g. ``version="1000000042"`` for ``llama@1.0.0``.
- MLflow tags (key -> value) live in ``metadata["mlflow"]["tags"]`` of the model or version,
  exactly as given; a version's ``source``, ``run_id`` and ``run_link`` in
  ``metadata["mlflow"]`` too. Our own list tags are not MLflow tags.
- Aliases are our aliases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.records import Model, ModelVersion
from crucible_model_registry.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry

__all__ = [
    "MLFLOW_KEY",
    "NUMBER_OFFSET",
    "STAGES",
    "current_aliases",
    "download_uri",
    "mlflow_info",
    "mlflow_number",
    "model_json",
    "our_stage",
    "resolve_version",
    "version_json",
]

MLFLOW_KEY = "mlflow"
"""The key of ``metadata`` that holds what MLflow knows of a model or version."""

NUMBER_OFFSET = 1_000_000_000
"""MLflow numbers from here on name versions by id: ``NUMBER_OFFSET + version.id``."""

STAGES: dict[Stage, str] = {
    Stage.EXPERIMENT: "None",
    Stage.STAGING: "Staging",
    Stage.PRODUCTION: "Production",
    Stage.ARCHIVED: "Archived",
}
_BY_NAME = {name.lower(): stage for stage, name in STAGES.items()}

ARTIFACT_ROOT = "cmr-versions"
"""Where the artifact proxy shows a version's recorded artifacts: ``cmr-versions/<id>``."""


def our_stage(name: object, *, field: str = "stage") -> Stage:
    """Our stage for an MLflow stage name.

    Raises:
        ValidationError: not one of None, Staging, Production, Archived.
    """
    stage = _BY_NAME.get(name.lower()) if isinstance(name, str) else None
    if stage is None:
        raise ValidationError.single(
            field, f"{name!r} is not an MLflow stage: use one of {', '.join(STAGES.values())}"
        )
    return stage


def mlflow_number(version: ModelVersion) -> int:
    """The integer an MLflow client knows this version by (see the module's docstring)."""
    text = version.version
    if text.isascii() and text.isdigit() and not text.startswith("0"):
        number = int(text)
        if number < NUMBER_OFFSET:
            return number
    return NUMBER_OFFSET + version.id


def resolve_version(registry: Registry, name: str, number: object) -> ModelVersion:
    """The version an MLflow client names by model name and number.

    Raises:
        ValidationError: ``number`` is not a whole number.
        NotFoundError: the model has no version of that number.
    """
    text = str(number).strip() if isinstance(number, str | int) else ""
    if not (text.isascii() and text.isdigit()):
        raise ValidationError.single("version", f"{number!r} must be an integer version number")
    value = int(text)
    if 0 < value < NUMBER_OFFSET:
        found = registry.get_version(f"{name}@{value}")
        if mlflow_number(found) == value:
            return found
    elif value > NUMBER_OFFSET:
        found = registry.get_version(value - NUMBER_OFFSET)
        if found.model_name == name and mlflow_number(found) == value:
            return found
    raise NotFoundError("version", f"{name}@{text}", "list versions with search_model_versions")


_NOTHING: Mapping[str, Any] = {}


def mlflow_info(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """What ``metadata`` holds for MLflow (read-only; empty when nothing)."""
    info = metadata.get(MLFLOW_KEY)
    return info if isinstance(info, Mapping) else _NOTHING


def mlflow_tags(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The MLflow tags kept in ``metadata`` (read-only; written as strings, key -> value)."""
    tags = mlflow_info(metadata).get("tags")
    return tags if isinstance(tags, Mapping) else _NOTHING


def current_aliases(registry: Registry, model_name: str) -> dict[str, int]:
    """The model's aliases now (alias -> version id), from its alias history."""
    aliases: dict[str, int] = {}
    for change in registry.alias_history(model_name):
        if change.version_id is None:
            aliases.pop(change.alias, None)
        else:
            aliases[change.alias] = change.version_id
    return aliases


def download_uri(version: ModelVersion) -> str:
    """Where an MLflow client downloads the version's files from.

    Our recorded artifacts, through the artifact proxy, when it has any; else the
    ``source`` an MLflow client gave (as MLflow's own server answers).
    """
    source = mlflow_info(version.metadata).get("source")
    if version.artifacts or not isinstance(source, str) or not source:
        return f"mlflow-artifacts:/{ARTIFACT_ROOT}/{version.id}"
    return source


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _tag_list(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(k), "value": str(v)} for k, v in tags.items()]


def version_json(version: ModelVersion, aliases: Iterable[str] = ()) -> dict[str, Any]:
    """An MLflow ``ModelVersion`` message, field for field as MLflow's server writes it.

    Like MLflow's server: ``description``, ``run_id`` and ``run_link`` are ``""`` when
    unset, ``user_id`` is left out, and ``aliases`` only when there are some (searches and a
    model's ``latest_versions`` pass none: MLflow's server shows no aliases there).
    """
    info = mlflow_info(version.metadata)
    doc: dict[str, Any] = {
        "name": version.model_name,
        "version": str(mlflow_number(version)),
        "creation_timestamp": _ms(version.created_at),
        "last_updated_timestamp": _ms(version.updated_at),
        "current_stage": STAGES[version.stage],
        "description": version.description or "",
        "source": info.get("source") or download_uri(version),
        "run_id": _text(info.get("run_id")),
        "status": "READY",
        "run_link": _text(info.get("run_link")),
    }
    tags = mlflow_tags(version.metadata)
    if tags:
        doc["tags"] = _tag_list(tags)
    names = sorted(aliases)
    if names:
        doc["aliases"] = names
    return doc


def model_json(
    model: Model, latest_versions: Iterable[ModelVersion], aliases: Mapping[str, int]
) -> dict[str, Any]:
    """An MLflow ``RegisteredModel`` message.

    Args:
        latest_versions: the latest version in each stage, in MLflow's stage order.
        aliases: alias -> the MLflow number of the version it points at.
    """
    doc: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": _ms(model.created_at),
        "last_updated_timestamp": _ms(model.updated_at),
    }
    if model.description is not None:
        doc["description"] = model.description
    latest = [version_json(v) for v in latest_versions]
    if latest:
        doc["latest_versions"] = latest
    tags = mlflow_tags(model.metadata)
    if tags:
        doc["tags"] = _tag_list(tags)
    pointed = [
        {"alias": alias, "version": str(number)} for alias, number in sorted(aliases.items())
    ]
    if pointed:
        doc["aliases"] = pointed
    return doc


def _aliases_by_version(aliases: Mapping[str, int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for alias, version_id in aliases.items():
        found.setdefault(version_id, []).append(alias)
    return found


def aliases_by_version(aliases: Mapping[str, int]) -> dict[int, list[str]]:
    """alias -> version id turned around: version id -> its aliases."""
    return _aliases_by_version(aliases)
