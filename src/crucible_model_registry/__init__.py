"""crucible-model-registry: versions, lineage, stages and verified artifacts of trained models.

Quick start::

    import crucible_model_registry as cmr
    v = cmr.register(model_name="my-sft", recipe="sft", base_model="org/base",
                     training_config={"lr": 1e-4}, metrics={"accuracy": 0.91})
    cmr.promote(v, "production")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crucible_model_registry._default import configure, delegate, get_registry
from crucible_model_registry.domain.config_hash import hash_config
from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
from crucible_model_registry.domain.records import (
    AliasChange,
    Artifact,
    LineageEdge,
    Model,
    ModelVersion,
    StageTransition,
)
from crucible_model_registry.errors import (
    ChecksumMismatchError,
    ConfigurationError,
    DatabaseError,
    DuplicateConfigError,
    DuplicateVersionError,
    LineageCycleError,
    NotFoundError,
    PromotionDeniedError,
    RegistryError,
    SchemaNotReadyError,
    StorageError,
    ValidationError,
)
from crucible_model_registry.registry import Registry

if TYPE_CHECKING:
    from crucible_model_registry import stages, storage, telemetry

__version__ = "0.1.0"

__all__ = [
    "AliasChange",
    "Artifact",
    "ArtifactType",
    "ChecksumMismatchError",
    "ConfigurationError",
    "DatabaseError",
    "DuplicateConfigError",
    "DuplicateVersionError",
    "LineageCycleError",
    "LineageEdge",
    "Model",
    "ModelVersion",
    "NotFoundError",
    "PromotionDeniedError",
    "Registry",
    "RegistryError",
    "Relationship",
    "SchemaNotReadyError",
    "Stage",
    "StageTransition",
    "StorageError",
    "ValidationError",
    "__version__",
    "add_tags",
    "configure",
    "delete_version",
    "find_by_config_hash",
    "get_model",
    "get_registry",
    "get_version",
    "hash_config",
    "list_models",
    "promote",
    "register",
    "remove_tags",
    "stage_history",
    "stages",
    "storage",
    "telemetry",
    "update_metrics",
]

register = delegate(Registry.register)
promote = delegate(Registry.promote)
get_model = delegate(Registry.get_model)
get_version = delegate(Registry.get_version)
find_by_config_hash = delegate(Registry.find_by_config_hash)
list_models = delegate(Registry.list_models)
stage_history = delegate(Registry.stage_history)
update_metrics = delegate(Registry.update_metrics)
add_tags = delegate(Registry.add_tags)
remove_tags = delegate(Registry.remove_tags)
delete_version = delegate(Registry.delete_version)

_SUBMODULES = frozenset({"stages", "storage", "telemetry"})


def __getattr__(name: str) -> Any:
    # Submodules load on first use, so that importing the package stays cheap.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
