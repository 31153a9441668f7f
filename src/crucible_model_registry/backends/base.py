"""The MetadataBackend protocol: everything ``Registry`` needs from wherever metadata lives.

``Registry`` checks and converts its arguments, then calls one method here; the backend
runs it as one transaction (SQL) or one request (HTTP). Arguments and results are domain
values and frozen records, never rows, connections or raw documents, so a backend is
swapped without the registry noticing. Backends conform structurally: ``SqlBackend``
(``backends/sql.py``) is today's; a remote one goes over HTTP.

Every method's errors are those of ``errors.py``: the backend translates its own failures
(driver exceptions, HTTP statuses) before they reach the registry.

Every write takes ``by`` (an :class:`Attribution`: the actor and the server request's id),
and a SQL backend appends its audit entry in the write's own transaction, so an entry
exists exactly when the write committed. A remote backend sends neither: the server's
registry attributes the write itself.
"""

from __future__ import annotations

import enum
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import timedelta

    from crucible_model_registry.domain.access import NewToken, Role, TokenInfo
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

__all__ = ["KEEP", "Keep", "MetadataBackend", "UploadClaim"]


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


KEEP: Final[Literal[Keep.KEEP]] = Keep.KEEP
"""``update_model(description=KEEP)``: leave the field as it is (None clears it)."""

UploadClaim: TypeAlias = object
"""An opaque handle from :meth:`MetadataBackend.claim_upload`; give it back unchanged."""


class MetadataBackend(Protocol):
    """Where models, versions, lineage, histories, policies and artifact records live.

    Refs are parsed (:class:`VersionRef`) and values checked by the caller; the backend
    resolves refs, enforces the rules that need the stored data (uniqueness, dedup,
    cycles, policies) atomically, and answers with frozen records.
    """

    # ------------------------------------------------------------------ schema

    def migrate(self) -> None:
        """Bring the backend's schema to this release's (a no-op where there is none)."""
        ...

    def close(self) -> None:
        """Release pooled connections; the backend may be used again afterwards."""
        ...

    def describe(self) -> str:
        """Where the metadata lives, for ``repr`` and messages (no secrets)."""
        ...

    def check(self) -> IntegrityReport:
        """Verify the stored invariants (``cmr db check``); writes nothing."""
        ...

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
        """Append one audit entry in a transaction of its own (denied attempts, tokens).

        Writes append their own entry in their own transaction; this is for events with
        no write of their own. A remote backend refuses: only the server writes the log.
        """
        ...

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
        """Make a token with a fresh secret; store only its hash; audit the creation.

        Raises:
            ValidationError: a token of that name exists.
        """
        ...

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, by name, without secrets."""
        ...

    def revoke_token(self, name: str, *, actor: str, request_id: str | None) -> None:
        """Delete the token named ``name`` and audit it; NotFoundError if there is none."""
        ...

    def audit_log(
        self,
        *,
        since: datetime | None,
        actor: str | None,
        action: str | None,
        limit: int,
    ) -> list[AuditEntry]:
        """The audit entries matching every filter given, newest first, at most ``limit``."""
        ...

    # ------------------------------------------------------------------ models and versions

    def register(self, spec: NewVersion, *, by: Attribution) -> ModelVersion:
        """Record a version with its metrics, tags, artifacts, parents and first stage.

        Raises:
            DuplicateConfigError: the training run exists (unless ``on_duplicate="return"``,
                which returns it).
            DuplicateVersionError: the model has this version string.
            NotFoundError: a parent does not exist.
        """
        ...

    def get_version(self, ref: VersionRef, *, at: datetime | None = None) -> ModelVersion:
        """The version ``ref`` names now, or (``at``, timezone-aware) named then.

        Raises:
            NotFoundError: nothing matches.
            ValidationError: ``at`` with an id or a version string.
        """
        ...

    def find_by_config_hash(self, config_hash: str) -> ModelVersion | None:
        """The earliest version with this (lower-case) config hash."""
        ...

    def get_model(self, name: str) -> Model:
        """The model called ``name``; NotFoundError if absent."""
        ...

    def list_models(self) -> list[Model]:
        """Every model, by name."""
        ...

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
        """Change what is given (``tags`` replaces them); NotFoundError for no model."""
        ...

    def create_model(
        self,
        name: str,
        *,
        description: str | None,
        tags: list[str],
        metadata: dict[str, Any],
        by: Attribution,
    ) -> Model:
        """A new model without versions; DuplicateModelError if the name is taken."""
        ...

    def rename_model(self, name: str, new_name: str, *, by: Attribution) -> Model:
        """The model under its new name; NotFoundError, or DuplicateModelError if taken."""
        ...

    def delete_model(self, name: str, *, force: bool, by: Attribution) -> Model:
        """Delete the model and all of it; the model as it was.

        Raises:
            ValidationError: a version is in production or another model's version
                descends from one of its versions, and not ``force``; or an upload to it
                is under way.
        """
        ...

    def update_version(
        self,
        ref: VersionRef,
        *,
        description: str | Keep | None = KEEP,
        metadata: dict[str, Any] | None = None,
        metadata_patch: dict[str, Any] | None = None,
        by: Attribution,
    ) -> ModelVersion:
        """Change what is given (``metadata`` replaces it); NotFoundError for no version."""
        ...

    def promote(
        self,
        ref: VersionRef,
        target: Stage,
        *,
        reason: str | None,
        by: Attribution,
        archive_existing: bool,
    ) -> PromotionResult:
        """Move a version to ``target``, recording every change, under the model's policy.

        Raises:
            PromotionDeniedError: the policy forbids it; nothing is written.
            NotFoundError: no such version.
        """
        ...

    def check_promotion(
        self, ref: VersionRef, target: Stage, *, actor: str | None, archive_existing: bool
    ) -> PromotionCheck:
        """Every policy condition on moving the version to ``target``, met or not; no write.

        ``actor`` is who would promote (the four-eyes rule is judged for them).

        Raises:
            NotFoundError: no such version.
        """
        ...

    def stage_history(self, ref: VersionRef) -> list[StageTransition]:
        """Every stage change of the version, oldest first."""
        ...

    def update_metrics(
        self, ref: VersionRef, metrics: dict[str, float], *, by: Attribution
    ) -> ModelVersion:
        """Merge metrics into the version (later values win)."""
        ...

    def add_tags(self, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
        """Add tags the version lacks."""
        ...

    def remove_tags(self, ref: VersionRef, tags: list[str], *, by: Attribution) -> ModelVersion:
        """Remove tags the version has."""
        ...

    def delete_version(self, ref: VersionRef, *, force: bool, by: Attribution) -> ModelVersion:
        """Delete the version's records (histories stay); the version as it was.

        Raises:
            ValidationError: it is in production or has descendants and not ``force``.
        """
        ...

    # ------------------------------------------------------------------ aliases and policies

    def set_alias(
        self, ref: VersionRef, alias: str, *, reason: str | None, by: Attribution
    ) -> ModelVersion:
        """Point the model's ``alias`` at the version, recording the move."""
        ...

    def delete_alias(
        self, model_name: str, alias: str, *, reason: str | None, by: Attribution
    ) -> None:
        """Remove an alias, recording it; NotFoundError if the model or alias is absent."""
        ...

    def alias_history(self, model_name: str) -> list[AliasChange]:
        """Every alias move and deletion of the model, oldest first."""
        ...

    def set_policy(
        self, model_name: str, policy: PromotionPolicy | None, *, by: Attribution
    ) -> None:
        """Store (None: remove) the model's promotion policy, recording the change."""
        ...

    def policy_history(self, model_name: str) -> list[PolicyChange]:
        """Every change of the model's promotion policy, oldest first."""
        ...

    def get_policy(self, model_name: str) -> PromotionPolicy | None:
        """The model's promotion policy, or None."""
        ...

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
        """Record ``parent -> child``; the cycle check and the insert are one transaction.

        Raises:
            LineageCycleError: the edge would close a cycle.
            ValidationError: the two are linked already (field ``edge``).
        """
        ...

    def ancestors(self, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
        """The versions ``ref`` descends from, nearest first, each once."""
        ...

    def descendants(self, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
        """The versions made from ``ref``, nearest first, each once."""
        ...

    def lineage(
        self, ref: VersionRef, *, direction: Direction, max_depth: int | None
    ) -> LineageGraph:
        """The version with its ancestors and/or descendants and their edges."""
        ...

    def would_create_cycle(self, parent: VersionRef, child: VersionRef) -> bool:
        """Would an edge ``parent -> child`` make a version its own ancestor?"""
        ...

    # ------------------------------------------------------------------ artifact records

    def get_artifact(self, artifact_id: int) -> Artifact:
        """The artifact record; NotFoundError if absent."""
        ...

    def claim_upload(self, version_id: int, backend: str, remote: str, *, ref: str) -> UploadClaim:
        """Claim ``remote`` on storage ``backend`` before an upload sends a byte.

        Raises:
            ValidationError: the version has an artifact there, or an upload to it is
                under way.
            NotFoundError: the version does not exist.
        """
        ...

    def new_claim(self, backend: str, remote: str) -> UploadClaim:
        """A claim on ``remote`` for :meth:`remove_artifact` to hold while bytes are deleted."""
        ...

    def release_upload(self, claim: UploadClaim) -> bool:
        """Give a claim back; False if it had expired and another owner has the path."""
        ...

    def renew_claim(self, claim: UploadClaim) -> bool:
        """Extend the claim's lease; False if it was lost meanwhile."""
        ...

    def holds_claim(self, claim: UploadClaim) -> bool:
        """Is the claim still this owner's?"""
        ...

    def keep_claim_alive(self, claim: UploadClaim) -> AbstractContextManager[None]:
        """Renew the claim's lease in the background while the block runs."""
        ...

    def add_artifact(
        self,
        version_id: int,
        spec: ArtifactSpec,
        *,
        claim: UploadClaim | None = None,
        by: Attribution,
    ) -> Artifact:
        """Record an artifact of the version, giving back the upload's ``claim``."""
        ...

    def remove_artifact(
        self, artifact_id: int, *, claim: UploadClaim | None = None, by: Attribution
    ) -> Artifact:
        """Delete the record (returned as it was); with ``claim``, hold its path meanwhile.

        Raises:
            NotFoundError: there is no such artifact.
            ValidationError: an upload to the claimed path is under way.
        """
        ...

    def artifacts_sharing(
        self, backend: str, remote: str, *, excluding: int
    ) -> list[tuple[int, str]]:
        """Candidate ``(id, storage_path)`` records on ``backend`` whose bytes may overlap
        ``remote`` (a path mentioning it, or any folder artifact); the caller compares paths.
        """
        ...

    def backend_records(self, backend: str) -> BackendRecords:
        """Every artifact path and live claim recorded for ``backend``, and the model names."""
        ...

    def blob_candidates(self, backend: str, size_bytes: int, probe: str) -> bool:
        """Does an artifact on ``backend`` hold a blob of this size and probe?"""
        ...

    def pin_blob(self, claim: UploadClaim, sha256: str) -> bool:
        """Keep the blob of ``sha256`` while ``claim`` lives; False if the claim is lost."""
        ...

    def blob_in_use(self, backend: str, sha256: str) -> bool:
        """Does an artifact reference the blob, or a live upload pin it?"""
        ...

    # ------------------------------------------------------------------ queries

    def find_versions(self, spec: QuerySpec) -> list[ModelVersion]:
        """The versions the spec matches, in its order, within its limit and offset.

        Raises:
            NotFoundError: a lineage predicate names no version.
        """
        ...

    def count_versions(self, spec: QuerySpec) -> int:
        """How many versions the spec matches (ordering, limit, offset ignored)."""
        ...

    def first_version(self, spec: QuerySpec) -> ModelVersion | None:
        """The first version the spec matches in its order (after its offset), or None."""
        ...

    def page_versions(self, spec: QuerySpec, *, size: int, cursor: str | None) -> Page:
        """One keyset page of ``size`` versions after ``cursor`` (limit/offset ignored).

        Raises:
            ValidationError: a malformed cursor, or one from a differently ordered query.
        """
        ...

    # ------------------------------------------------------------------ moving (API.md §15)

    def export_plan(self, model_glob: str | None) -> ExportPlan:
        """How many versions an export of the models matching ``model_glob`` (an fnmatch
        pattern; None: all) holds, and its kinds of line."""
        ...

    def export_bundles(self, model_glob: str | None) -> Iterator[ExportBundle]:
        """Every model matching ``model_glob`` with its export lines, one model at a time.

        A generator over one consistent snapshot, in bounded memory (one model's lines);
        close it to stop early.
        """
        ...

    def import_bundles(
        self, bundles: Sequence[ModelBundle], *, by: Attribution, dry_run: bool
    ) -> list[BundleOutcome]:
        """Apply each model's lines, each model all or nothing (``domain/exchange.py``).

        A conflict or an invalid line refuses that model and is reported in its outcome,
        never raised; edges that must wait for other models come back deferred. With
        ``dry_run`` every model's transaction is rolled back.
        """
        ...

    def import_edges(
        self, lines: Sequence[dict[str, Any]], *, by: Attribution, dry_run: bool
    ) -> list[str | None]:
        """Apply deferred lineage edges with the cycle check, each in its own transaction.

        Returns, per line: None (imported), ``"skipped"`` (here already), or why it was
        refused.
        """
        ...

    def artifact_checksums(self, model_name: str) -> dict[tuple[str, str, str], str | None]:
        """The model's artifacts here: (version, type, file name) -> checksum."""
        ...
