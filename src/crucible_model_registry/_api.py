"""The public surface, loaded on first use of any of its names (see ``__init__``).

Everything ``import crucible_model_registry as cmr`` offers besides the errors, the version and
the submodules lives here: the records and enums, ``Registry``, ``Query``, and the module-level
functions that run on the default registry.
"""

from __future__ import annotations

from crucible_model_registry._context import acting_as
from crucible_model_registry._default import configure, delegate, get_registry
from crucible_model_registry.domain.access import NewToken, TokenInfo
from crucible_model_registry.domain.audit import AuditEntry
from crucible_model_registry.domain.config_hash import hash_config
from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
from crucible_model_registry.domain.lineage import LineageGraph, LineageHit
from crucible_model_registry.domain.policy import PromotionPolicy
from crucible_model_registry.domain.records import (
    AliasChange,
    Artifact,
    LineageEdge,
    Model,
    ModelVersion,
    StageTransition,
)
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
from crucible_model_registry.query import Page, Query
from crucible_model_registry.registry import Registry
from crucible_model_registry.registry_api import RegistryAPI

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
    "update_metrics",
    "update_model",
    "upload_artifact",
    "verify_artifact",
    "would_create_cycle",
]

register = delegate(Registry.register)
promote = delegate(Registry.promote)
get_model = delegate(Registry.get_model)
get_version = delegate(Registry.get_version)
find_by_config_hash = delegate(Registry.find_by_config_hash)
list_models = delegate(Registry.list_models)
stage_history = delegate(Registry.stage_history)
update_metrics = delegate(Registry.update_metrics)
update_model = delegate(Registry.update_model)
add_tags = delegate(Registry.add_tags)
remove_tags = delegate(Registry.remove_tags)
delete_version = delegate(Registry.delete_version)
add_lineage = delegate(Registry.add_lineage)
get_ancestors = delegate(Registry.get_ancestors)
get_descendants = delegate(Registry.get_descendants)
get_lineage = delegate(Registry.get_lineage)
would_create_cycle = delegate(Registry.would_create_cycle)
set_alias = delegate(Registry.set_alias)
delete_alias = delegate(Registry.delete_alias)
alias_history = delegate(Registry.alias_history)
set_promotion_policy = delegate(Registry.set_promotion_policy)
get_promotion_policy = delegate(Registry.get_promotion_policy)
upload_artifact = delegate(Registry.upload_artifact)
download_artifact = delegate(Registry.download_artifact)
artifact_url = delegate(Registry.artifact_url)
verify_artifact = delegate(Registry.verify_artifact)
delete_artifact = delegate(Registry.delete_artifact)
query = delegate(Registry.query)
