"""Registry: the facade over domain rules, the SQL store, artifact storage and telemetry."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_model_registry import telemetry
from crucible_model_registry._context import current_principal
from crucible_model_registry._registry_access import AccessMethods
from crucible_model_registry._registry_artifacts import ArtifactMethods
from crucible_model_registry._registry_base import VersionLike, aware
from crucible_model_registry._registry_lineage import LineageMethods
from crucible_model_registry._registry_mlflow import MlflowMethods
from crucible_model_registry.backends.base import KEEP
from crucible_model_registry.backends.http import HttpBackend, is_server_url
from crucible_model_registry.domain.access import DEFAULT_PROTECTED, Role
from crucible_model_registry.domain.audit import MAX_AUDIT_LIMIT, AuditEntry
from crucible_model_registry.domain.config_hash import hash_config
from crucible_model_registry.domain.diff import VersionDiff, diff_versions
from crucible_model_registry.domain.enums import ArtifactType, Stage, parse_enum
from crucible_model_registry.domain.integrity import IntegrityReport
from crucible_model_registry.domain.policy import PolicyChange, PromotionCheck, PromotionPolicy
from crucible_model_registry.domain.query_spec import QuerySpec, SupportsQuerySpec, spec_of
from crucible_model_registry.domain.records import (
    AliasChange,
    Artifact,
    Model,
    ModelVersion,
    PromotionResult,
    StageTransition,
)
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.rules import (
    MAX_ACTOR,
    MAX_STORAGE_BACKEND,
    check_alias_name,
    check_config_hash,
    check_local_path,
    check_long_text,
    check_metrics,
    check_model_name,
    check_tags,
    check_text,
)
from crucible_model_registry.domain.specs import (
    OnDuplicate,
    check_metadata,
    new_version_from_input,
    ref_of,
)
from crucible_model_registry.domain.storage_reports import ArtifactDeletion, GarbageReport
from crucible_model_registry.errors import (
    ConfigurationError,
    NotFoundError,
    PromotionDeniedError,
    ValidationError,
)
from crucible_model_registry.storage.base import TransferResult, check_artifact_name
from crucible_model_registry.storage.manifest import download_artifact_files, download_target

if TYPE_CHECKING:
    from crucible_model_registry.settings import Settings
    from crucible_model_registry.storage.base import ProgressCallback, StorageBackend

__all__ = ["Registry", "RemoteRegistry", "VersionLike"]

_UNSET: Any = object()


class Registry(AccessMethods, ArtifactMethods, LineageMethods, MlflowMethods):
    """The model registry on one database and one default artifact store.

    Safe to share between threads; every public call is one transaction.

    Args:
        engine: a SQLAlchemy engine (the host application's, or from :meth:`from_url`):
            metadata lives in its database (a :class:`SqlBackend` over it).
        backend: where metadata lives instead, any :class:`MetadataBackend`.
        storage: where uploaded artifact bytes go; defaults to the ``CMR_STORAGE_*``
            settings (local disk under ``CMR_HOME`` unless configured otherwise).
        storages: further backends, by their names, for artifacts recorded elsewhere.
        auto_migrate: with ``engine``, create or upgrade the schema on first use instead
            of raising :class:`SchemaNotReadyError` (the embedded default does this).

    Raises:
        ConfigurationError: neither or both of ``engine`` and ``backend`` are given.
    """

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        token: str | None = None,
        storage: StorageBackend | None = None,
        storages: Sequence[StorageBackend] = (),
        auto_migrate: bool = False,
        **engine_options: Any,
    ) -> Registry:
        """A registry on the database at ``url``, or a :class:`RemoteRegistry` for a server.

        Args:
            url: any SQLAlchemy URL, or ``http(s)://host:port`` of a ``cmr serve``.
            token: the server's bearer token (remote only).

        Raises:
            ConfigurationError: a malformed URL, a missing driver, or options that do not
                fit the kind of URL.
        """
        if is_server_url(url):
            if storage is not None or storages or auto_migrate or engine_options:
                raise ConfigurationError(
                    "a remote registry takes only token=: the server holds the database and storage"
                )
            return RemoteRegistry(url, token=token)
        if token is not None:
            raise ConfigurationError("token= is for a registry server URL (http:// or https://)")
        return super().from_url(
            url, storage=storage, storages=storages, auto_migrate=auto_migrate, **engine_options
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Registry:
        """The registry the ``CMR_*`` settings describe: remote when ``CMR_SERVER_URL`` is set."""
        from crucible_model_registry.settings import load_settings

        settings = settings or load_settings()
        if settings.server_url:
            token = settings.token.get_secret_value() if settings.token else None
            return RemoteRegistry(settings.server_url, token=token)
        return super().from_settings(settings)

    # ----------------------------------------------------------------- register and read

    def register(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        model_name: str = _UNSET,
        version: str | None = _UNSET,
        recipe: str = _UNSET,
        base_model: str = _UNSET,
        training_config: Mapping[str, Any] | object = _UNSET,
        metrics: Mapping[str, float] | None = _UNSET,
        tags: list[str] | None = _UNSET,
        description: str | None = _UNSET,
        artifacts: list[Mapping[str, Any]] | None = _UNSET,
        parents: list[VersionLike] | None = _UNSET,
        parent_version_id: int | None = _UNSET,
        lineage_type: str | None = _UNSET,
        on_duplicate: OnDuplicate = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
    ) -> ModelVersion:
        """Record a trained version; the model is created on first registration.

        Args:
            data: the same fields as a single mapping (keyword arguments win).
            version: omitted → the model's next integer (``"1"``, ``"2"``, ...).
            training_config: hashed (RFC 8785 + SHA-256) for deduplication.
            parents: versions (records, ids or refs) this one was made from.
            lineage_type: how (``fine_tune``, ``merge``, ...); several parents default
                to ``merged_from``, one to ``fine_tuned_from``.
            on_duplicate: ``"return"`` gives back the existing version of the same run.
            metadata: any JSON object kept with the version (not hashed, not deduplicated);
                an MLflow client's tags, source and run id live under ``metadata["mlflow"]``.

        Raises:
            ValidationError: a field is missing or malformed (all are listed).
            DuplicateVersionError: the model has this version string already.
            DuplicateConfigError: the training run is registered already.
            NotFoundError: a parent does not exist.
        """
        given = {k: v for k, v in locals().items() if k not in ("self", "data") and v is not _UNSET}
        fields = {**(dict(data) if data is not None else {}), **given}
        by = self._by()
        spec = new_version_from_input(fields, actor=by.actor)
        self._authorize(Role.WRITE, spec.model_name, action="register", target=spec.model_name)
        for parent in spec.parents:
            self._authorize_ref(Role.READ, parent, action="register")
        with telemetry.operation("register", model=spec.model_name) as op:
            result = self._backend.register(spec, by=by)
            op.metadata.update(version=result.version, stage=result.stage.value)
        return result

    def get_model(self, name: str) -> Model:
        """The model called ``name``.

        Raises:
            NotFoundError: there is no such model.
        """
        name = check_model_name(name, field="name")
        self._authorize(Role.READ, name, action="get_model")
        return self._backend.get_model(name)

    def create_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Model:
        """Create a model without versions (:meth:`register` creates one on first use too).

        Raises:
            DuplicateModelError: a model of that name exists already.
            ValidationError: a bad name, tag, description or metadata (nothing is written).
            PermissionDeniedError: the acting token may not write to ``name``.
        """
        name = check_model_name(name, field="name")
        self._authorize(Role.WRITE, name, action="create_model")
        return self._backend.create_model(
            name,
            description=check_long_text(description, field="description"),
            tags=[] if tags is None else check_tags(tags),
            metadata=check_metadata(metadata),
            by=self._by(),
        )

    def rename_model(self, name: str, new_name: str) -> Model:
        """Give a model another name; versions, aliases, policy and histories go with it.

        Refs such as ``old@production`` stop resolving at once. Artifacts already stored
        keep their recorded paths (under the old name); new uploads go under the new one.

        Raises:
            NotFoundError: there is no model called ``name``.
            DuplicateModelError: a model called ``new_name`` exists already.
            ValidationError: ``new_name`` breaks the naming rules.
            PermissionDeniedError: the acting token is not admin of both names.
        """
        name = check_model_name(name, field="name")
        new_name = check_model_name(new_name, field="new_name")
        # Grants follow names, so a rename moves a model between grants: admin of both.
        self._authorize(Role.ADMIN, name, action="rename_model")
        self._authorize(Role.ADMIN, new_name, action="rename_model", target=name)
        return self._backend.rename_model(name, new_name, by=self._by())

    def delete_model(self, name: str, *, force: bool = False) -> None:
        """Delete a model with all its versions, aliases, policy and histories.

        The audit log keeps its entries. Artifact bytes stay where they are, as with
        :meth:`delete_version` (some may be references to storage the registry does not
        own): remove uploaded ones first with :meth:`delete_artifact`.

        Raises:
            NotFoundError: there is no such model.
            ValidationError: without ``force``, one of its versions is in production or a
                version of another model descends from one of its versions; with or
                without it, an upload to one of its versions is under way.
            PermissionDeniedError: the acting token is not admin of the model.
        """
        name = check_model_name(name, field="name")
        self._authorize(Role.ADMIN, name, action="delete_model")
        self._backend.delete_model(name, force=bool(force), by=self._by())

    def update_version(
        self,
        version: VersionLike,
        *,
        description: str | None = _UNSET,
        metadata: Mapping[str, Any] | None = None,
        metadata_patch: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Change a version's description or metadata; only what is given.

        Args:
            metadata: the new metadata, replacing the old.
            metadata_patch: a JSON merge patch (RFC 7396) of the metadata instead, applied
                atomically (as in :meth:`update_model`).

        Raises:
            NotFoundError: there is no such version.
            ValidationError: a bad description or metadata, or both metadata arguments
                (nothing is changed).
            PermissionDeniedError: the acting token may not write to the version's model.
        """
        if description is not _UNSET:
            description = check_long_text(description, field="description")
        meta, patch = _metadata_change(metadata, metadata_patch)
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.WRITE, ref, action="update_version")
        return self._backend.update_version(
            ref,
            description=KEEP if description is _UNSET else description,
            metadata=meta,
            metadata_patch=patch,
            by=self._by(),
        )

    def update_model(
        self,
        name: str,
        *,
        description: str | None = _UNSET,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        metadata_patch: Mapping[str, Any] | None = None,
    ) -> Model:
        """Change a model's description, tags (replacing them) or metadata; only what is given.

        Model tags match ``Query().where_tag(...)`` for every version of the model.

        Args:
            metadata: the new metadata, replacing the old.
            metadata_patch: a JSON merge patch (RFC 7396) of the metadata instead: ``None``
                values remove keys, mappings merge; applied atomically, so concurrent
                patches of different keys all land.

        Raises:
            NotFoundError: there is no such model.
            ValidationError: a bad tag, description or metadata, or both metadata
                arguments (nothing is changed).
        """
        name = check_model_name(name, field="name")
        self._authorize(Role.WRITE, name, action="update_model")
        checked_tags = None if tags is None else check_tags(tags)
        if description is not _UNSET:
            description = check_long_text(description, field="description")
        meta, patch = _metadata_change(metadata, metadata_patch)
        return self._backend.update_model(
            check_model_name(name, field="name"),
            description=KEEP if description is _UNSET else description,
            tags=checked_tags,
            metadata=meta,
            metadata_patch=patch,
            by=self._by(),
        )

    def list_models(self) -> list[Model]:
        """Every model, by name (at a server: those the token may read)."""
        return [m for m in self._backend.list_models() if self._visible(m.name)]

    def find_by_config_hash(self, config_hash: str) -> ModelVersion | None:
        """The earliest version registered with this config hash, if any."""
        found = self._backend.find_by_config_hash(check_config_hash(config_hash))
        return found if found is None or self._visible(found.model_name) else None

    def stage_history(self, version: VersionLike) -> list[StageTransition]:
        """Every stage change of a version, oldest first (registration included)."""
        ref = ref_of(version)
        self._authorize_ref(Role.READ, ref, action="stage_history")
        return self._backend.stage_history(ref)

    def diff(self, left: VersionLike, right: VersionLike) -> VersionDiff:
        """How ``right`` differs from ``left``: config, metrics, stage, tags, artifacts, lineage.

        Reads both versions and their ancestors (several reads, not one snapshot).

        Raises:
            NotFoundError: either version does not exist.
        """
        a, b = self.get_version(left), self.get_version(right)
        return diff_versions(
            a,
            b,
            left_ancestors=self.get_ancestors(a, with_distance=True),
            right_ancestors=self.get_ancestors(b, with_distance=True),
        )

    # ----------------------------------------------------------------- change

    def promote(
        self,
        version: VersionLike,
        stage: Stage | str,
        *,
        reason: str | None = None,
        archive_existing: bool = False,
    ) -> ModelVersion:
        """Move a version to another stage; promoting to its current stage is a no-op.

        Args:
            archive_existing: move the model's other versions in ``stage`` to
                ``archived`` in the same transaction.

        Raises:
            ValidationError: unknown stage.
            NotFoundError: unknown version.
            PromotionDeniedError: the model's promotion policy forbids it; ``.unmet``
                lists every failed condition and nothing was changed.
            PermissionDeniedError: (at a server) the token may not write to the model, or
                the change touches a protected stage and it may not promote.
        """
        return self._promote(
            version, stage, reason=reason, archive_existing=archive_existing
        ).version

    def _promote(
        self,
        version: VersionLike,
        stage: Stage | str,
        *,
        reason: str | None = None,
        archive_existing: bool = False,
    ) -> PromotionResult:
        """:meth:`promote`, answering what changed (the server's promote route sends it)."""
        target = parse_enum(Stage, stage, field="stage")
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.WRITE, ref, action="promote")
        if self._needs_promote_role(ref):
            current = self._backend.get_version(ref)
            self._authorize_stages(current.model_name, (current.stage, target), "promote", ref)
        by = self._by()
        with telemetry.operation("promote", to_stage=target.value, actor=by.actor) as op:
            try:
                result = self._backend.promote(
                    ref,
                    target,
                    reason=check_long_text(reason, field="reason"),
                    by=by,
                    archive_existing=archive_existing,
                )
            except PromotionDeniedError as exc:
                model, _, version_string = exc.version_ref.rpartition("@")
                op.metadata.update(model=model, version=version_string, unmet=len(exc.unmet))
                op.outcome = "denied"
                raise
            op.outcome = "promoted" if result.changed else "unchanged"
            op.metadata.update(
                model=result.version.model_name,
                version=result.version.version,
                from_stage=result.from_stage.value,
                archived=len(result.archived_ids),
            )
        return result

    def check_promotion(
        self, version: VersionLike, stage: Stage | str, *, archive_existing: bool = False
    ) -> PromotionCheck:
        """Every condition of the model's policy on promoting ``version`` to ``stage``, judged now.

        Writes nothing. The unmet conditions are what :meth:`promote` would list in its
        ``PromotionDeniedError`` at this moment, for the acting principal (a concurrent
        change can alter the answer). Reading it needs the read role on the model; whether
        the caller's role may make the move is not a policy condition (``promote`` says).

        Raises:
            ValidationError: unknown stage.
            NotFoundError: unknown version.
        """
        target = parse_enum(Stage, stage, field="stage")
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.READ, ref, action="check_promotion")
        # The four-eyes rule is judged for whoever asks: the one who would click.
        return self._backend.check_promotion(
            ref, target, actor=self._by().actor, archive_existing=archive_existing
        )

    def update_metrics(self, version: VersionLike, metrics: Mapping[str, float]) -> ModelVersion:
        """Merge metrics into a version (metrics often arrive after registration)."""
        checked = check_metrics(metrics)
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.WRITE, ref, action="update_metrics")
        return self._backend.update_metrics(ref, checked, by=self._by())

    def add_tags(self, version: VersionLike, tags: list[str]) -> ModelVersion:
        """Add tags to a version (ones it has already are ignored)."""
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.WRITE, ref, action="add_tags")
        return self._backend.add_tags(ref, check_tags(tags), by=self._by())

    def remove_tags(self, version: VersionLike, tags: list[str]) -> ModelVersion:
        """Remove tags from a version (ones it lacks are ignored)."""
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.WRITE, ref, action="remove_tags")
        return self._backend.remove_tags(ref, check_tags(tags), by=self._by())

    def delete_version(self, version: VersionLike, *, force: bool = False) -> None:
        """Delete a version's records, keeping its stage history as the audit trail.

        Artifact bytes stay where they are (some may be references to storage the
        registry does not own); remove uploaded ones first with :meth:`delete_artifact`.

        Raises:
            ValidationError: it is in production or has descendants and ``force`` is False,
                or an upload to it is under way (even with ``force``: wait for it).
        """
        ref = ref_of(version, field="version")
        self._authorize_ref(Role.ADMIN, ref, action="delete_version")
        self._backend.delete_version(ref, force=force, by=self._by())

    # ----------------------------------------------------------------- query

    def query(
        self, filters: Mapping[str, Any] | SupportsQuerySpec | QuerySpec | None = None
    ) -> list[ModelVersion]:
        """The versions a filter map or a :class:`Query` matches, in its order.

        Args:
            filters: ``{"stage": "production", "recipe": "sl_basic", "min_accuracy": 0.9}``
                (API.md §4: all keys combine with AND), a ``Query``, or None for all.

        Raises:
            ValidationError: an unknown key, operator or order field, or a bad value.
            NotFoundError: a lineage predicate names a version that does not exist.
        """
        return self._backend.find_versions(self._scoped_spec(spec_of(filters)))

    # ----------------------------------------------------------------- aliases and policy

    def set_alias(
        self, version: VersionLike, alias: str, *, reason: str | None = None
    ) -> ModelVersion:
        """Point an alias of the version's model (``model@champion``) at the version.

        The alias moves atomically and the move is kept in :meth:`alias_history`.

        Raises:
            ValidationError: ``alias`` breaks the naming rules: it must match
                ``[A-Za-z][A-Za-z0-9_.-]{0,63}`` and may not be a stage name,
                ``development``, ``latest`` (any case) or a version string of the model.
            NotFoundError: unknown version.
        """
        ref = ref_of(version, field="version")
        name = check_alias_name(alias)
        self._authorize_ref(Role.WRITE, ref, action="set_alias")
        if self._needs_promote_role(ref):
            new = self._backend.get_version(ref)
            stages = [new.stage, *self._alias_stage(new.model_name, name)]
            self._authorize_stages(new.model_name, stages, "set_alias", ref)
        return self._backend.set_alias(
            ref,
            name,
            reason=check_long_text(reason, field="reason"),
            by=self._by(),
        )

    def delete_alias(self, model_name: str, alias: str, *, reason: str | None = None) -> None:
        """Remove an alias of a model; the deletion is kept in :meth:`alias_history`.

        Raises:
            NotFoundError: the model has no such alias (or there is no such model).
        """
        model_name = check_model_name(model_name)
        alias = check_alias_name(alias)
        self._authorize(Role.WRITE, model_name, action="delete_alias", target=model_name)
        principal = current_principal()
        if principal is not None and not principal.may(Role.PROMOTE, model_name):
            stages = self._alias_stage(model_name, alias)
            self._authorize_stages(model_name, stages, "delete_alias", f"{model_name}@{alias}")
        self._backend.delete_alias(
            model_name,
            alias,
            reason=check_long_text(reason, field="reason"),
            by=self._by(),
        )

    def alias_history(self, model_name: str) -> list[AliasChange]:
        """Every alias move and deletion of a model, oldest first.

        Raises:
            NotFoundError: there is no such model.
        """
        model_name = check_model_name(model_name)
        self._authorize(Role.READ, model_name, action="alias_history")
        return self._backend.alias_history(model_name)

    def set_promotion_policy(
        self, model_name: str, policy: PromotionPolicy | Mapping[str, Any] | None
    ) -> None:
        """Store the rules every promotion of the model must follow; None removes them.

        The policy lives in the database, so every client of it enforces the same rules.

        Args:
            policy: a :class:`PromotionPolicy`, or its ``to_dict()`` form.

        Raises:
            ValidationError: the policy names an unknown stage or a bad gate condition.
            NotFoundError: there is no such model.
        """
        checked = (
            policy
            if policy is None or isinstance(policy, PromotionPolicy)
            else PromotionPolicy.from_dict(policy)
        )
        model_name = check_model_name(model_name)
        self._authorize(Role.ADMIN, model_name, action="set_promotion_policy")
        self._backend.set_policy(model_name, checked, by=self._by())

    def policy_history(self, model_name: str) -> list[PolicyChange]:
        """Every change of the model's promotion policy (old, new, actor, time), oldest first.

        Raises:
            NotFoundError: there is no such model.
        """
        model_name = check_model_name(model_name)
        self._authorize(Role.READ, model_name, action="policy_history")
        return self._backend.policy_history(model_name)

    def check(self) -> IntegrityReport:
        """Verify the database's invariants (what ``cmr db check`` runs); writes nothing.

        Returns:
            A frozen report: ``.ok``, and ``.violations`` naming each broken invariant.
        """
        self._authorize(Role.READ, None, action="check")
        return self._backend.check()

    def audit_log(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The audit log: every write, through the library or a server, newest first.

        Each write appends its entry in its own transaction, so the log holds an entry
        exactly for each write that committed (a refused write leaves none). Entries are
        never changed or removed through the registry: there is no method for it.

        Args:
            since: only entries at or after this timezone-aware time.
            actor: only this actor's entries.
            action: only entries of this action (``register``, ``promote``, ...).
            limit: the most entries returned (1 to 10000).

        Raises:
            ValidationError: a naive ``since``, a bad actor or action, or a bad limit.
            PermissionDeniedError: (at a server) the token is not an admin's.
        """
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not (1 <= limit <= MAX_AUDIT_LIMIT)
        ):
            raise ValidationError.single(
                "limit", f"must be a whole number from 1 to {MAX_AUDIT_LIMIT}"
            )
        self._authorize(Role.ADMIN, None, action="audit_log", target="audit log")
        return self._backend.audit_log(
            since=None if since is None else aware(since, field="since"),
            actor=None if actor is None else check_text(actor, field="actor", limit=MAX_ACTOR),
            action=None if action is None else check_text(action, field="action", limit=64),
            limit=limit,
        )

    def get_promotion_policy(self, model_name: str) -> PromotionPolicy | None:
        """The model's promotion policy, or None when every promotion is allowed.

        Raises:
            NotFoundError: there is no such model.
        """
        model_name = check_model_name(model_name)
        self._authorize(Role.READ, model_name, action="get_promotion_policy")
        return self._backend.get_policy(model_name)

    def hash_config(self, training_config: object) -> str:
        """The config hash :meth:`register` would compute for ``training_config``."""
        return hash_config(training_config)

    # ----------------------------------------------------------------- protected stages

    def _needs_promote_role(self, ref: VersionRef) -> bool:
        """Is a principal acting that may write but not promote on the model of ``ref``?"""
        principal = current_principal()
        if principal is None:
            return False
        model = ref.model_name or self._backend.get_version(ref).model_name
        return not principal.may(Role.PROMOTE, model)

    def _authorize_stages(
        self, model_name: str, stages: Sequence[Stage], action: str, target: object
    ) -> None:
        """Require ``promote`` when any of ``stages`` is protected on the model."""
        policy = self._backend.get_policy(model_name)
        protected = DEFAULT_PROTECTED if policy is None else policy.protected
        if any(stage in protected for stage in stages):
            self._authorize(Role.PROMOTE, model_name, action=action, target=str(target))

    def _alias_stage(self, model_name: str, alias: str) -> list[Stage]:
        """The stage of the version ``model_name@alias`` points at now (none: [])."""
        try:
            return [
                self._backend.get_version(VersionRef(model_name=model_name, selector=alias)).stage
            ]
        except NotFoundError:
            return []


def _metadata_change(
    metadata: Mapping[str, Any] | None, patch: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if metadata is not None and patch is not None:
        raise ValidationError.single("metadata_patch", "give metadata or metadata_patch, not both")
    return (
        None if metadata is None else check_metadata(metadata),
        None if patch is None else check_metadata(patch, field="metadata_patch"),
    )


class RemoteRegistry(Registry):
    """``Registry`` over a registry server (``cmr serve``): the same methods and errors.

    Metadata calls go through an :class:`HttpBackend`; the server's registry runs every
    rule. Artifact bytes stream through the server, which holds the storage credentials,
    and downloads are verified against the recorded SHA-256 here before they land.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8470``.
        token: its bearer token (``CMR_TOKEN``).
        timeout: seconds to connect and between bytes of an answer.
        retries: further attempts of a request that may safely be repeated.
    """

    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = 30.0, retries: int = 3
    ) -> None:
        self._http = HttpBackend(url, token=token, timeout=timeout, retries=retries)
        super().__init__(backend=self._http)

    def __repr__(self) -> str:
        return f"RemoteRegistry({self._http.url!r})"

    def storage_backend(self, name: str | None = None) -> StorageBackend:
        """Not available: a remote registry's storage lives on the server.

        Raises:
            ConfigurationError: always.
        """
        raise ConfigurationError(
            f"{self!r} reaches storage only through its server: use upload_artifact, "
            "download_artifact, artifact_url and verify_artifact"
        )

    def upload_artifact(
        self,
        version: VersionLike,
        artifact_type: ArtifactType | str,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        storage: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Artifact:
        # Registry's checks, made here too so that bad input is refused before a byte is sent.
        kind = parse_enum(ArtifactType, artifact_type, field="type")
        local = check_local_path(path, field="path")
        if not local.exists():
            raise ValidationError.single("path", f"{str(local)!r} does not exist")
        if storage is not None:
            storage = check_text(storage, field="storage", limit=MAX_STORAGE_BACKEND)
        stored_name = check_artifact_name(
            check_text(name or local.resolve().name, field="name", normalize=False)
        )
        return self._http.upload_artifact(
            ref_of(version, field="version"),
            kind,
            local,
            name=stored_name,
            storage=storage,
            progress=progress,
            by=self._by(),
        )

    def download_artifact(
        self,
        artifact: Artifact | int,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        parents: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Path:
        # The same placement as Registry's (staging, collisions, verification per file),
        # with each stored file streamed from the server and hashed here.
        record = self._artifact(artifact)
        target = download_target(record.storage_path, check_local_path(dest, field="dest"))
        download_artifact_files(
            _ServerFiles(self._http, record),
            record.storage_path,
            target,
            expected_sha256=record.checksum,
            progress=progress,
            overwrite=overwrite,
            parents=parents,
        )
        return target

    def artifact_url(
        self, artifact: Artifact | int, *, expires_in: int = 3600, file: str | None = None
    ) -> str:
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
            raise ValidationError.single("expires_in", "must be a whole number of seconds >= 1")
        record = self._artifact(artifact)
        return self._http.artifact_url(record.id, expires_in=expires_in, file=file)

    def verify_artifact(
        self, artifact: Artifact | int, *, progress: ProgressCallback | None = None
    ) -> bool:
        # The server reads the bytes back; no byte comes here, so progress is not called.
        return self._http.verify_artifact(self._artifact(artifact).id)

    def delete_artifact(
        self, artifact: Artifact | int, *, keep_bytes: bool = False
    ) -> ArtifactDeletion:
        return self._http.delete_artifact(
            self._artifact(artifact).id, keep_bytes=keep_bytes, by=self._by()
        )

    def _artifact_source(self, line: dict[str, Any]) -> StorageBackend | None:
        # An exported artifact's bytes come through the server, from its record.
        version = self.get_version(f"{line['model']}@{line['version']}")
        for record in version.artifacts:
            if record.storage_path == line["storage_path"] and record.type.value == line["type"]:
                return _ServerFiles(self._http, record)
        return None

    def _import_storage(self) -> StorageBackend:
        raise ConfigurationError(
            f"{self!r} cannot store the artifact bytes of an export: import it on the "
            "server's host (`cmr import` there), or export without --with-artifacts"
        )

    def collect_garbage(
        self,
        *,
        dry_run: bool = False,
        older_than: timedelta = timedelta(hours=24),
        storage: str | None = None,
    ) -> GarbageReport:
        # The server's storages are the ones to clean, by the server's registry.
        if not isinstance(older_than, timedelta):
            raise ValidationError.single("older_than", "must be a timedelta")
        return self._http.collect_garbage(
            dry_run=dry_run,
            older_than_seconds=older_than.total_seconds(),
            storage=storage,
            by=self._by(),
        )


class _ServerFiles:
    """One artifact's stored files as a read-only StorageBackend, streamed from a server."""

    def __init__(self, http: HttpBackend, record: Artifact) -> None:
        self._http = http
        self._record = record

    @property
    def name(self) -> str:
        return self._record.storage_backend

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        root = self._record.storage_path
        file = remote_path[len(root) :] if remote_path.startswith(root) else remote_path
        local = Path(local_path)
        digest = self._http.fetch_file(
            self._record,
            file or None,
            local,
            expected_sha256=expected_sha256,
            progress=progress,
        )
        return TransferResult(remote_path, local.stat().st_size, digest)

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        raise ConfigurationError("a download source cannot store bytes")

    def delete(self, remote_path: str) -> None:
        raise ConfigurationError("a download source cannot delete bytes")

    def exists(self, remote_path: str) -> bool:
        raise ConfigurationError("a download source cannot list bytes")

    def url(self, remote_path: str, *, expires_in: int = 3600) -> str:
        raise ConfigurationError("ask the server for URLs: artifact_url")
