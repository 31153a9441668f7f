"""The frozen records the registry returns: Model, ModelVersion, Artifact, LineageEdge, ..."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage

__all__ = [
    "AliasChange",
    "Artifact",
    "LineageEdge",
    "Model",
    "ModelVersion",
    "PromotionResult",
    "StageTransition",
    "to_jsonable",
]


def to_jsonable(value: object) -> Any:
    """Plain JSON values for a record (or anything holding records): datetimes as ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


class _Record:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """This record as plain JSON values."""
        result: dict[str, Any] = to_jsonable(self)
        return result


@dataclasses.dataclass(frozen=True, slots=True)
class Model(_Record):
    """A named model: the family its versions belong to."""

    id: int
    name: str
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Artifact(_Record):
    """Where one artifact of a version is stored, with its checksum and size."""

    id: int
    model_version_id: int
    type: ArtifactType
    storage_backend: str
    storage_path: str
    checksum: str | None
    size_bytes: int | None
    created_at: datetime
    manifest: list[dict[str, Any]] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ModelVersion(_Record):
    """One trained version of a model: recipe, base model, config, metrics, stage."""

    id: int
    model_id: int
    model_name: str
    version: str
    stage: Stage
    recipe: str
    base_model: str
    config_hash: str
    training_config: dict[str, Any]
    metrics: dict[str, float]
    tags: list[str]
    description: str | None
    artifacts: list[Artifact]
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What another registry knows of this version (``metadata["mlflow"]`` after an
    MLflow import: its tags, source, run id, status and user)."""
    registered_by: str | None = None
    """The principal (actor) that registered the version; None for versions registered
    before the registry recorded it."""

    @property
    def ref(self) -> str:
        """``model@version``, the readable reference to this version."""
        return f"{self.model_name}@{self.version}"


@dataclasses.dataclass(frozen=True, slots=True)
class LineageEdge(_Record):
    """Parent (source) to child (target): the child was made from the parent."""

    id: int
    source_version_id: int
    target_version_id: int
    relationship: Relationship
    metadata: dict[str, Any]
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class StageTransition(_Record):
    """One recorded stage change; ``from_stage`` is None for the registration itself."""

    version_id: int
    from_stage: Stage | None
    to_stage: Stage
    reason: str | None
    actor: str | None
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AliasChange(_Record):
    """One recorded alias move; ``version_id`` None means the alias was deleted."""

    alias: str
    version_id: int | None
    reason: str | None
    actor: str | None
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PromotionResult(_Record):
    """What a promotion did: the version now, the stage it left, whom it archived.

    ``changed`` is False when the version was in the target stage already (a no-op).
    """

    version: ModelVersion
    from_stage: Stage
    archived_ids: list[int]
    changed: bool
