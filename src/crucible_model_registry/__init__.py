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

from crucible_model_registry import _hooks
from crucible_model_registry.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ConfigurationError,
    ConstraintViolationError,
    DatabaseError,
    DuplicateConfigError,
    DuplicateModelError,
    DuplicateVersionError,
    LineageCycleError,
    NotFoundError,
    PermissionDeniedError,
    PromotionDeniedError,
    RegistryError,
    SchemaNotReadyError,
    StageFailedError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    from crucible_model_registry import stages, storage, telemetry
    from crucible_model_registry._api import (
        AliasChange,
        Artifact,
        ArtifactType,
        AuditEntry,
        LineageEdge,
        LineageGraph,
        LineageHit,
        Model,
        ModelVersion,
        NewToken,
        Page,
        PromotionPolicy,
        Query,
        Registry,
        RegistryAPI,
        Relationship,
        Stage,
        StageTransition,
        TokenInfo,
        acting_as,
        add_lineage,
        add_tags,
        alias_history,
        artifact_url,
        configure,
        delete_alias,
        delete_artifact,
        delete_version,
        download_artifact,
        find_by_config_hash,
        get_ancestors,
        get_descendants,
        get_lineage,
        get_model,
        get_promotion_policy,
        get_registry,
        get_version,
        hash_config,
        list_models,
        promote,
        query,
        register,
        remove_tags,
        set_alias,
        set_promotion_policy,
        stage_history,
        update_metrics,
        update_model,
        upload_artifact,
        verify_artifact,
        would_create_cycle,
    )

__version__ = "0.1.0"

__all__ = [
    "AliasChange",
    "Artifact",
    "ArtifactType",
    "AuditEntry",
    "AuthenticationError",
    "ChecksumMismatchError",
    "ConfigurationError",
    "ConstraintViolationError",
    "DatabaseError",
    "DuplicateConfigError",
    "DuplicateModelError",
    "DuplicateVersionError",
    "LineageCycleError",
    "LineageEdge",
    "LineageGraph",
    "LineageHit",
    "Model",
    "ModelVersion",
    "NewToken",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "PromotionDeniedError",
    "PromotionPolicy",
    "Query",
    "Registry",
    "RegistryAPI",
    "RegistryError",
    "Relationship",
    "SchemaNotReadyError",
    "Stage",
    "StageFailedError",
    "StageTransition",
    "StorageError",
    "TokenInfo",
    "ValidationError",
    "__version__",
    "acting_as",
    "add_lineage",
    "add_tags",
    "alias_history",
    "artifact_url",
    "configure",
    "delete_alias",
    "delete_artifact",
    "delete_version",
    "download_artifact",
    "find_by_config_hash",
    "get_ancestors",
    "get_descendants",
    "get_lineage",
    "get_model",
    "get_promotion_policy",
    "get_registry",
    "get_version",
    "hash_config",
    "list_models",
    "promote",
    "query",
    "register",
    "remove_tags",
    "set_alias",
    "set_promotion_policy",
    "stage_history",
    "stages",
    "storage",
    "telemetry",
    "update_metrics",
    "update_model",
    "upload_artifact",
    "verify_artifact",
    "would_create_cycle",
]

_SUBMODULES = frozenset({"stages", "storage", "telemetry"})


def __getattr__(name: str) -> Any:
    # Importing the package loads only the errors: the rest (records, Registry, the functions
    # on the default registry, the submodules) loads on first use, so that `import
    # crucible_model_registry` and the `cmr` start-up stay cheap.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in __all__:
        api = importlib.import_module(f"{__name__}._api")
        globals().update((public, getattr(api, public)) for public in api.__all__)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _default_registry() -> Any:
    return __getattr__("get_registry")()


# A Query built without a registry runs on the default one, looked up when it executes.
_hooks.default_registry[:] = [_default_registry]
