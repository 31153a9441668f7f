"""RegistryAPI: the public methods of a registry, as a protocol every registry satisfies.

``Registry`` satisfies it, whatever its backend; a remote registry must too. mypy checks
``Registry`` against it below, and a test checks that the two list the same methods with
the same parameters, so neither can gain or change one without the other. Code that works
with any registry can be typed with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

if TYPE_CHECKING:
    from crucible_model_registry._registry_move import MoveMethods, MoveProgress
    from crucible_model_registry.backends.base import MetadataBackend
    from crucible_model_registry.domain.access import NewToken, Role, TokenInfo
    from crucible_model_registry.domain.audit import AuditEntry
    from crucible_model_registry.domain.diff import VersionDiff
    from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage
    from crucible_model_registry.domain.exchange import ExportResult, ImportReport
    from crucible_model_registry.domain.integrity import IntegrityReport
    from crucible_model_registry.domain.lineage import Direction, LineageGraph, LineageHit
    from crucible_model_registry.domain.mlflow import MlflowImportReport
    from crucible_model_registry.domain.policy import PolicyChange, PromotionCheck, PromotionPolicy
    from crucible_model_registry.domain.query_spec import QuerySpec, SupportsQuerySpec
    from crucible_model_registry.domain.records import (
        AliasChange,
        Artifact,
        LineageEdge,
        Model,
        ModelVersion,
        StageTransition,
    )
    from crucible_model_registry.domain.specs import OnDuplicate
    from crucible_model_registry.domain.storage_reports import ArtifactDeletion, GarbageReport
    from crucible_model_registry.registry import Registry, RemoteRegistry
    from crucible_model_registry.storage.base import ProgressCallback, StorageBackend

__all__ = ["RegistryAPI"]


class RegistryAPI(Protocol):
    """Every public method of ``Registry`` (API.md §3-§7), with the same signatures.

    The methods are documented on ``Registry``.
    """

    @property
    def backend(self) -> MetadataBackend: ...

    def migrate(self) -> None: ...

    def close(self) -> None: ...

    # ------------------------------------------------------------------ versions

    def register(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        model_name: str = ...,
        version: str | None = ...,
        recipe: str = ...,
        base_model: str = ...,
        training_config: Mapping[str, Any] | object = ...,
        metrics: Mapping[str, float] | None = ...,
        tags: list[str] | None = ...,
        description: str | None = ...,
        artifacts: list[Mapping[str, Any]] | None = ...,
        parents: list[ModelVersion | int | str] | None = ...,
        parent_version_id: int | None = ...,
        lineage_type: str | None = ...,
        on_duplicate: OnDuplicate = ...,
        metadata: Mapping[str, Any] | None = ...,
    ) -> ModelVersion: ...

    def get_version(
        self, ref: ModelVersion | int | str, *, at: datetime | None = None
    ) -> ModelVersion: ...

    def get_model(self, name: str) -> Model: ...

    def create_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Model: ...

    def rename_model(self, name: str, new_name: str) -> Model: ...

    def delete_model(self, name: str, *, force: bool = False) -> None: ...

    def update_version(
        self,
        version: ModelVersion | int | str,
        *,
        description: str | None = ...,
        metadata: Mapping[str, Any] | None = None,
        metadata_patch: Mapping[str, Any] | None = None,
    ) -> ModelVersion: ...

    def update_model(
        self,
        name: str,
        *,
        description: str | None = ...,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        metadata_patch: Mapping[str, Any] | None = None,
    ) -> Model: ...

    def list_models(self) -> list[Model]: ...

    def find_by_config_hash(self, config_hash: str) -> ModelVersion | None: ...

    def stage_history(self, version: ModelVersion | int | str) -> list[StageTransition]: ...

    def promote(
        self,
        version: ModelVersion | int | str,
        stage: Stage | str,
        *,
        reason: str | None = None,
        archive_existing: bool = False,
    ) -> ModelVersion: ...

    def check_promotion(
        self,
        version: ModelVersion | int | str,
        stage: Stage | str,
        *,
        archive_existing: bool = False,
    ) -> PromotionCheck: ...

    def update_metrics(
        self, version: ModelVersion | int | str, metrics: Mapping[str, float]
    ) -> ModelVersion: ...

    def add_tags(self, version: ModelVersion | int | str, tags: list[str]) -> ModelVersion: ...

    def remove_tags(self, version: ModelVersion | int | str, tags: list[str]) -> ModelVersion: ...

    def delete_version(self, version: ModelVersion | int | str, *, force: bool = False) -> None: ...

    def query(
        self, filters: Mapping[str, Any] | SupportsQuerySpec | QuerySpec | None = None
    ) -> list[ModelVersion]: ...

    def hash_config(self, training_config: object) -> str: ...

    # ------------------------------------------------------------------ aliases and policy

    def set_alias(
        self, version: ModelVersion | int | str, alias: str, *, reason: str | None = None
    ) -> ModelVersion: ...

    def delete_alias(self, model_name: str, alias: str, *, reason: str | None = None) -> None: ...

    def alias_history(self, model_name: str) -> list[AliasChange]: ...

    def set_promotion_policy(
        self, model_name: str, policy: PromotionPolicy | Mapping[str, Any] | None
    ) -> None: ...

    def get_promotion_policy(self, model_name: str) -> PromotionPolicy | None: ...

    def policy_history(self, model_name: str) -> list[PolicyChange]: ...

    def check(self) -> IntegrityReport: ...

    def audit_log(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]: ...

    def diff(
        self, left: ModelVersion | int | str, right: ModelVersion | int | str
    ) -> VersionDiff: ...

    # ------------------------------------------------------------------ lineage

    def add_lineage(
        self,
        parent: ModelVersion | int | str,
        child: ModelVersion | int | str,
        relationship: Relationship | str = ...,
        metadata: Mapping[str, Any] | None = None,
    ) -> LineageEdge: ...

    @overload
    def get_ancestors(
        self,
        version: ModelVersion | int | str,
        max_depth: int | None = None,
        *,
        with_distance: Literal[False] = False,
    ) -> list[ModelVersion]: ...

    @overload
    def get_ancestors(
        self,
        version: ModelVersion | int | str,
        max_depth: int | None = None,
        *,
        with_distance: Literal[True],
    ) -> list[LineageHit]: ...

    def get_ancestors(
        self,
        version: ModelVersion | int | str,
        max_depth: int | None = None,
        *,
        with_distance: bool = False,
    ) -> list[ModelVersion] | list[LineageHit]: ...

    @overload
    def get_descendants(
        self,
        version: ModelVersion | int | str,
        max_depth: int | None = None,
        *,
        with_distance: Literal[False] = False,
    ) -> list[ModelVersion]: ...

    @overload
    def get_descendants(
        self,
        version: ModelVersion | int | str,
        max_depth: int | None = None,
        *,
        with_distance: Literal[True],
    ) -> list[LineageHit]: ...

    def get_descendants(
        self,
        version: ModelVersion | int | str,
        max_depth: int | None = None,
        *,
        with_distance: bool = False,
    ) -> list[ModelVersion] | list[LineageHit]: ...

    def get_lineage(
        self,
        version: ModelVersion | int | str,
        *,
        direction: Direction = "both",
        max_depth: int | None = None,
    ) -> LineageGraph: ...

    def would_create_cycle(
        self, parent: ModelVersion | int | str, child: ModelVersion | int | str
    ) -> bool: ...

    # ------------------------------------------------------------------ artifacts

    def storage_backend(self, name: str | None = None) -> StorageBackend: ...

    def upload_artifact(
        self,
        version: ModelVersion | int | str,
        artifact_type: ArtifactType | str,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        storage: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Artifact: ...

    def get_artifact(self, artifact: Artifact | int) -> Artifact: ...

    def download_artifact(
        self,
        artifact: Artifact | int,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        parents: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path: ...

    def artifact_url(
        self, artifact: Artifact | int, *, expires_in: int = 3600, file: str | None = None
    ) -> str: ...

    def verify_artifact(
        self, artifact: Artifact | int, *, progress: ProgressCallback | None = None
    ) -> bool: ...

    def delete_artifact(
        self, artifact: Artifact | int, *, keep_bytes: bool = False
    ) -> ArtifactDeletion: ...

    def collect_garbage(
        self,
        *,
        dry_run: bool = False,
        older_than: timedelta = ...,
        storage: str | None = None,
    ) -> GarbageReport: ...

    # ------------------------------------------------------------------ access control

    def create_token(
        self,
        name: str,
        *,
        role: Role | str,
        models: Iterable[str] | None = None,
        expires_in: timedelta | str | int | None = None,
    ) -> NewToken: ...

    def list_tokens(self) -> list[TokenInfo]: ...

    def revoke_token(self, name: str) -> None: ...

    # ------------------------------------------------------------------ moving registries

    def export_to(
        self,
        dest: str | os.PathLike[str],
        *,
        with_artifacts: bool = False,
        models: str | None = None,
        progress: MoveProgress | None = None,
    ) -> ExportResult: ...

    def import_from(
        self,
        src: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        progress: MoveProgress | None = None,
    ) -> ImportReport: ...

    def copy_to(
        self,
        target: MoveMethods,
        *,
        with_artifacts: bool = False,
        models: str | None = None,
        dry_run: bool = False,
        progress: MoveProgress | None = None,
    ) -> ImportReport: ...

    def import_hf(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        copy_artifacts: bool = False,
    ) -> ModelVersion: ...

    def import_mlflow(
        self,
        uri: str,
        *,
        models: str | None = None,
        copy_artifacts: bool = False,
        dry_run: bool = False,
        token: str | None = None,
        progress: MoveProgress | None = None,
    ) -> MlflowImportReport: ...


if TYPE_CHECKING:

    def _registry_satisfies_the_protocol(registry: Registry) -> RegistryAPI:
        # mypy fails here if Registry lacks a method of RegistryAPI or changes its types.
        return registry

    def _remote_registry_satisfies_the_protocol(registry: RemoteRegistry) -> RegistryAPI:
        # The same check for the remote registry: its artifact methods are its own.
        return registry
