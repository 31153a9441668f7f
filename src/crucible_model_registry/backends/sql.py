"""SqlBackend: the MetadataBackend over a SQL database, through the functions of ``store/``.

Each method is one ``store`` call (one transaction). The schema is checked, or migrated
with ``auto_migrate``, on the first call that needs the database.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from crucible_model_registry import store
from crucible_model_registry.backends.base import KEEP, Keep, UploadClaim
from crucible_model_registry.domain.access import NewToken, hash_token, new_token_secret

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy import Engine

    from crucible_model_registry.domain.access import Role, TokenInfo
    from crucible_model_registry.domain.audit import Attribution, AuditEntry
    from crucible_model_registry.domain.enums import Relationship, Stage
    from crucible_model_registry.domain.exchange import (
        BundleOutcome,
        ExportBundle,
        ExportPlan,
        ModelBundle,
    )
    from crucible_model_registry.domain.integrity import IntegrityReport
    from crucible_model_registry.domain.lineage import Direction, LineageGraph, LineageHit
    from crucible_model_registry.domain.policy import PolicyChange, PromotionCheck, PromotionPolicy
    from crucible_model_registry.domain.query_spec import Page, QuerySpec
    from crucible_model_registry.domain.records import (
        AliasChange,
        Artifact,
        LineageEdge,
        Model,
        ModelVersion,
        PromotionResult,
        StageTransition,
    )
    from crucible_model_registry.domain.refs import VersionRef
    from crucible_model_registry.domain.specs import ArtifactSpec, NewVersion
    from crucible_model_registry.domain.storage_reports import BackendRecords
    from crucible_model_registry.store.artifacts import UploadClaim as SqlClaim
    from crucible_model_registry.store.engine import Database
    from crucible_model_registry.store.tokens import StoredToken

__all__ = ["SqlBackend"]


class SqlBackend:
    """Models, versions, lineage and histories in the registry's tables of a SQL database.

    Args:
        engine: a SQLAlchemy engine (the host application's, or
            ``store.engine.create_registry_engine(url)``).
        auto_migrate: create or upgrade the schema on first use instead of raising
            :class:`SchemaNotReadyError` (the embedded default does this).
    """

    def __init__(self, engine: Engine, *, auto_migrate: bool = False) -> None:
        self._database = store.engine.Database(engine)
        self._auto_migrate = auto_migrate
        self._schema_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, auto_migrate: bool = False, **engine_options: Any) -> SqlBackend:
        """A backend on the database at ``url`` (any SQLAlchemy URL).

        Raises:
            ConfigurationError: for a malformed URL or a missing driver.
        """
        engine = store.engine.create_registry_engine(
            url, create_missing=auto_migrate, **engine_options
        )
        return cls(engine, auto_migrate=auto_migrate)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        return self._database.engine

    @property
    def _db(self) -> Database:
        if not self._schema_ready:
            with self._lock:
                if not self._schema_ready:
                    if self._auto_migrate:
                        with store.engine.creating_database():
                            if store.schema.current_revision(self.engine) != (
                                store.schema.HEAD_REVISION
                            ):
                                store.schema.migrate(self.engine)
                    else:
                        store.schema.check_schema(self.engine)
                    self._schema_ready = True
        return self._database

    # ------------------------------------------------------------------ schema

    def migrate(self) -> None:
        # The only call (besides auto_migrate) that may create a missing SQLite file.
        store.schema.migrate(self.engine)
        self._schema_ready = True

    def close(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def check(self) -> IntegrityReport:
        return store.integrity.check(self._db)

    # ------------------------------------------------------------------ audit

    def record_audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        outcome: Literal["ok", "denied"] = "ok",
    ) -> AuditEntry:
        return store.audit.record(
            self._db,
            actor=actor,
            action=action,
            target=target,
            details=details,
            request_id=request_id,
            outcome=outcome,
        )

    # ------------------------------------------------------------------ tokens

    def create_token(
        self,
        name: str,
        *,
        role: Role,
        models: tuple[str, ...],
        expires_in: timedelta | None,
        actor: str,
        request_id: str | None,
    ) -> NewToken:
        secret = new_token_secret()
        expires_at = None if expires_in is None else datetime.now(UTC) + expires_in
        info = store.tokens.create_token(
            self._db,
            name=name,
            token_hash=hash_token(secret),
            role=role,
            models=models,
            expires_at=expires_at,
            actor=actor,
            request_id=request_id,
        )
        return NewToken(info.name, secret, info.role, list(info.models), info.expires_at)

    def list_tokens(self) -> list[TokenInfo]:
        return store.tokens.list_tokens(self._db)

    def revoke_token(self, name: str, *, actor: str, request_id: str | None) -> None:
        store.tokens.revoke_token(self._db, name, actor=actor, request_id=request_id)

    def find_token(self, token_hash: str) -> StoredToken | None:
        """The token stored under this hash (the server's authentication; not protocol)."""
        return store.tokens.find_token(self._db, token_hash)

    def touch_token(self, name: str, *, at: datetime, every: timedelta) -> None:
        """Record the token's use at ``at``, at most once per ``every``."""
        store.tokens.touch_token(self._db, name, at=at, every=every)

    def count_tokens(self) -> int:
        """How many tokens exist."""
        return store.tokens.count_tokens(self._db)

    def audit_log(
        self,
        *,
        since: datetime | None,
        actor: str | None,
        action: str | None,
        limit: int,
    ) -> list[AuditEntry]:
        return store.audit.entries(self._db, since=since, actor=actor, action=action, limit=limit)

    # ------------------------------------------------------------------ models and versions

    def register(self, spec: NewVersion, *, by: Attribution) -> ModelVersion:
        return store.registration.register(self._db, spec, by=by)

    def get_version(self, ref: VersionRef, *, at: datetime | None = None) -> ModelVersion:
        if at is None:
            return store.versions.get_version(self._db, ref)
        return store.governance.get_version_at(self._db, ref, at)

    def find_by_config_hash(self, config_hash: str) -> ModelVersion | None:
        return store.versions.find_by_config_hash(self._db, config_hash)

    def get_model(self, name: str) -> Model:
        return store.models.get_model(self._db, name)

    def list_models(self) -> list[Model]:
        return store.models.list_models(self._db)

    def update_model(
        self,
        name: str,
        *,
        description: str | Keep | None = KEEP,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        metadata_patch: dict[str, Any] | None = None,
        by: Attribution,
    ) -> Model:
        return store.models.update_model(
            self._db,
            name,
            description=store.models.KEEP if description is KEEP else description,
            tags=tags,
            metadata=metadata,
            metadata_patch=metadata_patch,
            by=by,
        )

    def create_model(
        self,
        name: str,
        *,
        description: str | None,
        tags: list[str],
        metadata: dict[str, Any],
        by: Attribution,
    ) -> Model:
        return store.models.create_model(
            self._db, name, description=description, tags=tags, metadata=metadata, by=by
        )

    def rename_model(self, name: str, new_name: str, *, by: Attribution) -> Model:
        return store.models.rename_model(self._db, name, new_name, by=by)

    def delete_model(self, name: str, *, force: bool, by: Attribution) -> Model:
        return store.versions.delete_model(self._db, name, force=force, by=by)

    def update_version(
        self,
        ref: VersionRef,
        *,
        description: str | Keep | None = KEEP,
        metadata: dict[str, Any] | None = None,
        metadata_patch: dict[str, Any] | None = None,
        by: Attribution,
    ) -> ModelVersion:
        return store.versions.update_version(
            self._db,
            ref,
            description=store.models.KEEP if description is KEEP else description,
            metadata=metadata,
            metadata_patch=metadata_patch,
            by=by,
        )

    def promote(
        self,
        ref: VersionRef,
        target: Stage,
        *,
        reason: str | None,
        by: Attribution,
        archive_existing: bool,
    ) -> PromotionResult:
        return store.promotion.promote(
            self._db,
            ref,
            target,
            reason=reason,
            by=by,
            archive_existing=archive_existing,
        )

    def check_promotion(
        self, ref: VersionRef, target: Stage, *, actor: str | None, archive_existing: bool
    ) -> PromotionCheck:
        return store.promotion.check_promotion(
            self._db, ref, target, actor=actor, archive_existing=archive_existing
        )

    def stage_history(self, ref: VersionRef) -> list[StageTransition]:
        return store.versions.stage_history(self._db, ref)

    def update_metrics(
        self, ref: VersionRef, metrics: dict[str, float], *, by: Attribution
    ) -> ModelVersion:
        return store.versions.update_metrics(self._db, ref, metrics, by=by)

    def add_tags(self, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
        return store.versions.add_tags(self._db, ref, tags, by=by)

    def remove_tags(self, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
        return store.versions.remove_tags(self._db, ref, tags, by=by)

    def delete_version(self, ref: VersionRef, *, force: bool, by: Attribution) -> ModelVersion:
        return store.versions.delete_version(self._db, ref, force=force, by=by)

    # ------------------------------------------------------------------ aliases and policies

    def set_alias(
        self, ref: VersionRef, alias: str, *, reason: str | None, by: Attribution
    ) -> ModelVersion:
        return store.governance.set_alias(self._db, ref, alias, reason=reason, by=by)

    def delete_alias(
        self, model_name: str, alias: str, *, reason: str | None, by: Attribution
    ) -> None:
        store.governance.delete_alias(self._db, model_name, alias, reason=reason, by=by)

    def alias_history(self, model_name: str) -> list[AliasChange]:
        return store.governance.alias_history(self._db, model_name)

    def set_policy(
        self, model_name: str, policy: PromotionPolicy | None, *, by: Attribution
    ) -> None:
        store.governance.set_policy(self._db, model_name, policy, by=by)

    def policy_history(self, model_name: str) -> list[PolicyChange]:
        return store.governance.policy_history(self._db, model_name)

    def get_policy(self, model_name: str) -> PromotionPolicy | None:
        return store.governance.get_policy(self._db, model_name)

    # ------------------------------------------------------------------ lineage

    def add_edge(
        self,
        parent: VersionRef,
        child: VersionRef,
        *,
        relationship: Relationship,
        metadata: dict[str, Any],
        by: Attribution,
    ) -> LineageEdge:
        return store.lineage.add_edge(
            self._db, parent, child, relationship=relationship, metadata=metadata, by=by
        )

    def ancestors(self, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
        return store.lineage.ancestors(self._db, ref, max_depth)

    def descendants(self, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
        return store.lineage.descendants(self._db, ref, max_depth)

    def lineage(
        self, ref: VersionRef, *, direction: Direction, max_depth: int | None
    ) -> LineageGraph:
        return store.lineage.lineage(self._db, ref, direction=direction, max_depth=max_depth)

    def would_create_cycle(self, parent: VersionRef, child: VersionRef) -> bool:
        return store.lineage.would_create_cycle(self._db, parent, child)

    # ------------------------------------------------------------------ artifact records

    def get_artifact(self, artifact_id: int) -> Artifact:
        return store.artifacts.get_artifact(self._db, artifact_id)

    def claim_upload(self, version_id: int, backend: str, remote: str, *, ref: str) -> UploadClaim:
        return store.artifacts.claim_upload(self._db, version_id, backend, remote, ref=ref)

    def new_claim(self, backend: str, remote: str) -> UploadClaim:
        return store.artifacts.new_claim(backend, remote)

    def release_upload(self, claim: UploadClaim) -> bool:
        return store.artifacts.release_upload(self._db, cast("SqlClaim", claim))

    def renew_claim(self, claim: UploadClaim) -> bool:
        return store.artifacts.renew_claim(self._db, cast("SqlClaim", claim))

    def holds_claim(self, claim: UploadClaim) -> bool:
        return store.artifacts.holds_claim(self._db, cast("SqlClaim", claim))

    def keep_claim_alive(self, claim: UploadClaim) -> AbstractContextManager[None]:
        return store.artifacts.keep_claim_alive(self._db, cast("SqlClaim", claim))

    def add_artifact(
        self,
        version_id: int,
        spec: ArtifactSpec,
        *,
        claim: UploadClaim | None = None,
        by: Attribution,
    ) -> Artifact:
        return store.artifacts.add_artifact(
            self._db, version_id, spec, claim=cast("SqlClaim | None", claim), by=by
        )

    def remove_artifact(
        self, artifact_id: int, *, claim: UploadClaim | None = None, by: Attribution
    ) -> Artifact:
        return store.artifacts.remove_artifact(
            self._db, artifact_id, claim=cast("SqlClaim | None", claim), by=by
        )

    def artifacts_sharing(
        self, backend: str, remote: str, *, excluding: int
    ) -> list[tuple[int, str]]:
        return store.references.artifacts_sharing(self._db, backend, remote, excluding=excluding)

    def backend_records(self, backend: str) -> BackendRecords:
        return store.references.backend_records(self._db, backend)

    def blob_candidates(self, backend: str, size_bytes: int, probe: str) -> bool:
        return store.references.blob_candidates(self._db, backend, size_bytes, probe)

    def pin_blob(self, claim: UploadClaim, sha256: str) -> bool:
        return store.references.pin_blob(self._db, cast("SqlClaim", claim), sha256)

    def blob_in_use(self, backend: str, sha256: str) -> bool:
        return store.references.blob_in_use(self._db, backend, sha256)

    # ------------------------------------------------------------------ queries

    def find_versions(self, spec: QuerySpec) -> list[ModelVersion]:
        return store.queries.find_versions(self._db, spec)

    def count_versions(self, spec: QuerySpec) -> int:
        return store.queries.count_versions(self._db, spec)

    def first_version(self, spec: QuerySpec) -> ModelVersion | None:
        limit = 1 if spec.limit is None else min(spec.limit, 1)
        found = store.queries.find_versions(self._db, replace(spec, limit=limit))
        return found[0] if found else None

    def page_versions(self, spec: QuerySpec, *, size: int, cursor: str | None) -> Page:
        return store.queries.page_versions(self._db, spec, size=size, cursor=cursor)

    # ------------------------------------------------------------------ moving

    def export_plan(self, model_glob: str | None) -> ExportPlan:
        return store.exchange.export_plan(self._db, model_glob)

    def export_bundles(self, model_glob: str | None) -> Iterator[ExportBundle]:
        return store.exchange.export_bundles(self._db, model_glob=model_glob)

    def import_bundles(
        self, bundles: Sequence[ModelBundle], *, by: Attribution, dry_run: bool
    ) -> list[BundleOutcome]:
        return [
            store.exchange_import.import_bundle(self._db, bundle, by=by, dry_run=dry_run)
            for bundle in bundles
        ]

    def import_edges(
        self, lines: Sequence[dict[str, Any]], *, by: Attribution, dry_run: bool
    ) -> list[str | None]:
        return [
            store.exchange_import.import_edge(self._db, line, by=by, dry_run=dry_run)
            for line in lines
        ]

    def artifact_checksums(self, model_name: str) -> dict[tuple[str, str, str], str | None]:
        return store.exchange_import.artifact_checksums(self._db, model_name)


if TYPE_CHECKING:
    from crucible_model_registry.backends.base import MetadataBackend

    # mypy proves here that SqlBackend has every method of the protocol, as declared.
    _conforms: type[MetadataBackend] = SqlBackend
