"""Registry: the facade over domain rules, the SQL store, artifact storage and telemetry."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from crucible_model_registry import _transfers, store, telemetry
from crucible_model_registry._storages import StorageSet
from crucible_model_registry.domain.actor import current_actor
from crucible_model_registry.domain.config_hash import hash_config, normalize_config
from crucible_model_registry.domain.enums import ArtifactType, Relationship, Stage, parse_enum
from crucible_model_registry.domain.lineage import (
    Direction,
    LineageGraph,
    LineageHit,
    check_direction,
    check_edge_metadata,
    check_max_depth,
)
from crucible_model_registry.domain.policy import PromotionPolicy
from crucible_model_registry.domain.query_spec import Page, QuerySpec, SupportsQuerySpec, spec_of
from crucible_model_registry.domain.records import (
    AliasChange,
    Artifact,
    LineageEdge,
    Model,
    ModelVersion,
    StageTransition,
)
from crucible_model_registry.domain.rules import (
    check_alias_name,
    check_metrics,
    check_model_name,
    check_tags,
    check_text,
)
from crucible_model_registry.domain.specs import (
    OnDuplicate,
    new_version_from_input,
    ref_of,
)
from crucible_model_registry.errors import PromotionDeniedError, RegistryError, ValidationError
from crucible_model_registry.storage.base import artifact_remote_path
from crucible_model_registry.storage.manifest import (
    is_directory_path,
    verify_artifact_files,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from crucible_model_registry.settings import Settings
    from crucible_model_registry.storage.base import ProgressCallback, StorageBackend
    from crucible_model_registry.store.engine import Database

__all__ = ["Registry", "VersionLike"]

_log = logging.getLogger("crucible_model_registry")

VersionLike = ModelVersion | int | str
"""A version record, its id, or a ref string (``"model@1.0"``, ``"model@production"``)."""

_UNSET: Any = object()


class Registry:
    """The model registry on one database and one default artifact store.

    Safe to share between threads; every public call is one transaction.

    Args:
        engine: a SQLAlchemy engine (the host application's, or from :meth:`from_url`).
        storage: where uploaded artifact bytes go; defaults to the ``CMR_STORAGE_*``
            settings (local disk under ``CMR_HOME`` unless configured otherwise).
        storages: further backends, by their names, for artifacts recorded elsewhere.
        auto_migrate: create or upgrade the schema on first use instead of raising
            :class:`SchemaNotReadyError` (the embedded default does this).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        storage: StorageBackend | None = None,
        storages: Sequence[StorageBackend] = (),
        auto_migrate: bool = False,
        settings: Settings | None = None,
    ) -> None:
        self._database = store.engine.Database(engine)
        self._storages = StorageSet(storage, storages, settings)
        self._auto_migrate = auto_migrate
        self._schema_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        storage: StorageBackend | None = None,
        storages: Sequence[StorageBackend] = (),
        auto_migrate: bool = False,
        **engine_options: Any,
    ) -> Registry:
        """A registry on the database at ``url`` (any SQLAlchemy URL).

        Raises:
            ConfigurationError: for a malformed URL or a missing driver.
        """
        engine = store.engine.create_registry_engine(url, **engine_options)
        return cls(engine, storage=storage, storages=storages, auto_migrate=auto_migrate)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Registry:
        """The registry the ``CMR_*`` settings describe; the embedded default migrates itself."""
        # pydantic-settings costs ~0.1 s to import: only the default registry pays for it.
        from crucible_model_registry.settings import load_settings

        settings = settings or load_settings()
        if settings.is_embedded:
            settings.home.mkdir(parents=True, exist_ok=True)
        engine = store.engine.create_registry_engine(settings.resolved_database_url)
        return cls(engine, auto_migrate=settings.is_embedded, settings=settings)

    def __repr__(self) -> str:
        return f"Registry({self._database.engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine the registry uses."""
        return self._database.engine

    @property
    def _db(self) -> Database:
        if not self._schema_ready:
            with self._lock:
                if not self._schema_ready:
                    if self._auto_migrate:
                        if store.schema.current_revision(self.engine) != (
                            store.schema.HEAD_REVISION
                        ):
                            store.schema.migrate(self.engine)
                    else:
                        store.schema.check_schema(self.engine)
                    self._schema_ready = True
        return self._database

    def migrate(self) -> None:
        """Create or upgrade the registry's tables (and only those) to this release's schema."""
        store.schema.migrate(self.engine)
        self._schema_ready = True

    def close(self) -> None:
        """Release the engine's pooled connections."""
        self.engine.dispose()

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

        Raises:
            ValidationError: a field is missing or malformed (all are listed).
            DuplicateVersionError: the model has this version string already.
            DuplicateConfigError: the training run is registered already.
            NotFoundError: a parent does not exist.
        """
        given = {k: v for k, v in locals().items() if k not in ("self", "data") and v is not _UNSET}
        fields = {**(dict(data) if data is not None else {}), **given}
        spec = new_version_from_input(fields, actor=current_actor())
        with telemetry.operation("register", model=spec.model_name) as op:
            result = store.registration.register(self._db, spec)
            op.metadata.update(version=result.version, stage=result.stage.value)
        return result

    def get_model(self, name: str) -> Model:
        """The model called ``name``.

        Raises:
            NotFoundError: there is no such model.
        """
        return store.models.get_model(self._db, check_model_name(name, field="name"))

    def update_model(
        self,
        name: str,
        *,
        description: str | None = _UNSET,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Model:
        """Change a model's description, tags (replacing them) or metadata; only what is given.

        Model tags match ``Query().where_tag(...)`` for every version of the model.

        Raises:
            NotFoundError: there is no such model.
            ValidationError: a bad tag, description or metadata (nothing is changed).
        """
        checked_tags = None if tags is None else check_tags(tags)
        if description is not _UNSET and description is not None:
            description = check_text(description, field="description", limit=10_000)
        meta = None
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise ValidationError.single("metadata", "must be a mapping")
            normalised = normalize_config(dict(metadata), path="metadata")
            assert isinstance(normalised, dict)
            meta = normalised
        kept: Any = store.models.KEEP
        return store.models.update_model(
            self._db,
            check_model_name(name, field="name"),
            description=kept if description is _UNSET else description,
            tags=checked_tags,
            metadata=meta,
        )

    def list_models(self) -> list[Model]:
        """Every model, by name."""
        return store.models.list_models(self._db)

    def get_version(self, ref: VersionLike, *, at: datetime | None = None) -> ModelVersion:
        """A version by id, ``model@version``, ``model@<stage>``, ``model@latest`` or alias.

        Args:
            at: answer from the history instead: the version that held a ``model@<stage>``,
                ``model@<alias>`` or ``model@latest`` ref at this timezone-aware time (a
                change recorded at exactly ``at`` counts), as the version is now.

        Raises:
            ValidationError: ``ref`` is not a reference; ``at`` is naive, or given with an
                id or a version string (they name one version whatever the time).
            NotFoundError: nothing matches it (then), or the version that did is deleted.
        """
        if at is None:
            return store.versions.get_version(self._db, ref_of(ref))
        return store.governance.get_version_at(self._db, ref_of(ref), _aware(at, field="at"))

    def find_by_config_hash(self, config_hash: str) -> ModelVersion | None:
        """The earliest version registered with this config hash, if any."""
        if not isinstance(config_hash, str) or len(config_hash) != 64:
            raise ValidationError.single("config_hash", "must be a 64-digit SHA-256 hex string")
        return store.versions.find_by_config_hash(self._db, config_hash.lower())

    def stage_history(self, version: VersionLike) -> list[StageTransition]:
        """Every stage change of a version, oldest first (registration included)."""
        return store.versions.stage_history(self._db, ref_of(version))

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
        """
        target = parse_enum(Stage, stage, field="stage")
        ref = ref_of(version, field="version")
        actor = current_actor()
        with telemetry.operation("promote", to_stage=target.value, actor=actor) as op:
            try:
                result = store.promotion.promote(
                    self._db,
                    ref,
                    target,
                    reason=reason,
                    actor=actor,
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
        return result.version

    def update_metrics(self, version: VersionLike, metrics: Mapping[str, float]) -> ModelVersion:
        """Merge metrics into a version (metrics often arrive after registration)."""
        checked = check_metrics(metrics)
        return store.versions.update_metrics(self._db, ref_of(version, field="version"), checked)

    def add_tags(self, version: VersionLike, tags: list[str]) -> ModelVersion:
        """Add tags to a version (ones it has already are ignored)."""
        return store.versions.add_tags(self._db, ref_of(version, field="version"), check_tags(tags))

    def remove_tags(self, version: VersionLike, tags: list[str]) -> ModelVersion:
        """Remove tags from a version (ones it lacks are ignored)."""
        return store.versions.remove_tags(
            self._db, ref_of(version, field="version"), check_tags(tags)
        )

    def delete_version(self, version: VersionLike, *, force: bool = False) -> None:
        """Delete a version's records, keeping its stage history as the audit trail.

        Artifact bytes stay where they are (some may be references to storage the
        registry does not own); remove uploaded ones first with :meth:`delete_artifact`.

        Raises:
            ValidationError: it is in production or has descendants and ``force`` is False.
        """
        store.versions.delete_version(
            self._db, ref_of(version, field="version"), force=force, actor=current_actor()
        )

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
        return store.queries.find_versions(self._db, spec_of(filters))

    def _run_query(self, spec: QuerySpec) -> list[ModelVersion]:
        return store.queries.find_versions(self._db, spec)

    def _count(self, spec: QuerySpec) -> int:
        return store.queries.count_versions(self._db, spec)

    def _page(self, spec: QuerySpec, size: int, cursor: str | None) -> Page:
        return store.queries.page_versions(self._db, spec, size=size, cursor=cursor)

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
        return store.governance.set_alias(
            self._db,
            ref_of(version, field="version"),
            check_alias_name(alias),
            reason=_reason(reason),
            actor=current_actor(),
        )

    def delete_alias(self, model_name: str, alias: str, *, reason: str | None = None) -> None:
        """Remove an alias of a model; the deletion is kept in :meth:`alias_history`.

        Raises:
            NotFoundError: the model has no such alias (or there is no such model).
        """
        store.governance.delete_alias(
            self._db,
            check_model_name(model_name),
            check_alias_name(alias),
            reason=_reason(reason),
            actor=current_actor(),
        )

    def alias_history(self, model_name: str) -> list[AliasChange]:
        """Every alias move and deletion of a model, oldest first.

        Raises:
            NotFoundError: there is no such model.
        """
        return store.governance.alias_history(self._db, check_model_name(model_name))

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
        store.governance.set_policy(self._db, check_model_name(model_name), checked)

    def get_promotion_policy(self, model_name: str) -> PromotionPolicy | None:
        """The model's promotion policy, or None when every promotion is allowed.

        Raises:
            NotFoundError: there is no such model.
        """
        return store.governance.get_policy(self._db, check_model_name(model_name))

    # ----------------------------------------------------------------- lineage

    def add_lineage(
        self,
        parent: VersionLike,
        child: VersionLike,
        relationship: Relationship | str = Relationship.FINE_TUNED_FROM,
        metadata: Mapping[str, Any] | None = None,
    ) -> LineageEdge:
        """Record that ``child`` was made from ``parent`` (versions of any models).

        The cycle check and the insert are one transaction, safe against concurrent
        calls that would close a cycle together.

        Args:
            relationship: how (``fine_tuned_from``, ``merge``, ``dpo``, ...).
            metadata: JSON-serialisable details of the edge.

        Raises:
            LineageCycleError: ``child`` is ``parent`` or one of its ancestors.
            NotFoundError: either version does not exist.
            ValidationError: unknown relationship, bad metadata, or the two versions are
                linked already (field ``edge``).
        """
        label = parse_enum(Relationship, relationship, field="relationship")
        return store.lineage.add_edge(
            self._db,
            ref_of(parent, field="parent"),
            ref_of(child, field="child"),
            relationship=label,
            metadata=check_edge_metadata(metadata),
        )

    @overload
    def get_ancestors(
        self,
        version: VersionLike,
        max_depth: int | None = None,
        *,
        with_distance: Literal[False] = False,
    ) -> list[ModelVersion]: ...
    @overload
    def get_ancestors(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: Literal[True]
    ) -> list[LineageHit]: ...
    def get_ancestors(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: bool = False
    ) -> list[ModelVersion] | list[LineageHit]:
        """The versions ``version`` was made from, nearest first, each once.

        Args:
            max_depth: follow at most this many edges (None: all the way to the roots).
            with_distance: return :class:`LineageHit` values (version, distance, and the
                relationship that reached it) instead of bare versions.

        Raises:
            NotFoundError: the version does not exist.
            ValidationError: ``max_depth`` is not None or a whole number >= 1.
        """
        depth = check_max_depth(max_depth)
        hits = store.lineage.ancestors(self._db, ref_of(version, field="version"), depth)
        return hits if with_distance else [h.version for h in hits]

    @overload
    def get_descendants(
        self,
        version: VersionLike,
        max_depth: int | None = None,
        *,
        with_distance: Literal[False] = False,
    ) -> list[ModelVersion]: ...
    @overload
    def get_descendants(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: Literal[True]
    ) -> list[LineageHit]: ...
    def get_descendants(
        self, version: VersionLike, max_depth: int | None = None, *, with_distance: bool = False
    ) -> list[ModelVersion] | list[LineageHit]:
        """The versions made from ``version``, directly or not, nearest first, each once.

        Args:
            max_depth: follow at most this many edges (None: all the way to the leaves).
            with_distance: return :class:`LineageHit` values instead of bare versions.

        Raises:
            NotFoundError: the version does not exist.
            ValidationError: ``max_depth`` is not None or a whole number >= 1.
        """
        depth = check_max_depth(max_depth)
        hits = store.lineage.descendants(self._db, ref_of(version, field="version"), depth)
        return hits if with_distance else [h.version for h in hits]

    def get_lineage(
        self,
        version: VersionLike,
        *,
        direction: Direction = "both",
        max_depth: int | None = None,
    ) -> LineageGraph:
        """``version`` with its ancestors and descendants (not siblings) and their edges.

        Args:
            direction: ``up`` (ancestors only), ``down`` (descendants only) or ``both``.
            max_depth: follow at most this many edges each way.

        Raises:
            NotFoundError: the version does not exist.
            ValidationError: bad ``direction`` or ``max_depth``.
        """
        return store.lineage.lineage(
            self._db,
            ref_of(version, field="version"),
            direction=check_direction(direction),
            max_depth=check_max_depth(max_depth),
        )

    def would_create_cycle(self, parent: VersionLike, child: VersionLike) -> bool:
        """Would :meth:`add_lineage` of ``parent -> child`` be refused as a cycle?

        Raises:
            NotFoundError: either version does not exist.
        """
        return store.lineage.would_create_cycle(
            self._db, ref_of(parent, field="parent"), ref_of(child, field="child")
        )

    # ----------------------------------------------------------------- artifacts

    def storage_backend(self, name: str | None = None) -> StorageBackend:
        """The backend called ``name`` (default: the registry's own storage).

        Raises:
            ConfigurationError: this registry has no backend of that name configured.
        """
        return self._storages.get(name)

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
        """Upload a file or a directory and record it as an artifact of ``version``.

        Stored at ``<model_name>/<version>/<type>/<name>``; a directory keeps its tree and
        a manifest of every file's path, size and SHA-256. A failed upload records nothing;
        a failure while recording deletes what was uploaded.

        Args:
            name: the stored name (default: the file or directory name).
            storage: a configured backend's name (default: the registry's storage).
            progress: called with byte increments as the upload advances.

        Raises:
            ValidationError: bad type or path, the version already has that artifact, or
                another upload to that path is under way.
            StorageError: the backend failed.
        """
        kind = parse_enum(ArtifactType, artifact_type, field="type")
        local = Path(path)
        if not local.exists():
            raise ValidationError.single("path", f"{str(local)!r} does not exist")
        record = self.get_version(version)
        backend = self.storage_backend(storage)
        remote = artifact_remote_path(
            record.model_name, record.version, kind.value, name or local.resolve().name
        )
        artifact = _transfers.upload(
            self._db, backend, record, kind=kind, local=local, remote=remote, progress=progress
        )
        self._push_model_card(backend, record)
        return artifact

    def _push_model_card(self, backend: StorageBackend, record: ModelVersion) -> None:
        # The Hub understands base_model/base_model_relation in the model card; other
        # backends have no card. The artifact is stored and recorded by now, so a card
        # that cannot be written is reported, not raised.
        push = getattr(backend, "push_model_card", None)
        if not callable(push):
            return
        parents = self.get_ancestors(record, 1, with_distance=True)
        relationship = parents[0].relationship if parents else None
        if relationship is Relationship.MERGED_FROM:
            base_models = list(dict.fromkeys(p.version.base_model for p in parents))
        else:
            base_models = [record.base_model]
        try:
            push(
                model_name=record.model_name,
                version=record.version,
                base_models=base_models,
                relationship=relationship,
                metrics=record.metrics,
                recipe=record.recipe,
                config_hash=record.config_hash,
            )
        except RegistryError as exc:
            _log.warning("artifact stored, but the model card was not updated: %s", exc)

    def download_artifact(
        self,
        artifact: Artifact | int,
        dest: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Download an artifact to ``dest``, verified against its recorded SHA-256.

        The bytes land in a temporary file beside ``dest`` and replace it only once they
        match; an existing file at ``dest`` keeps its bytes otherwise. If ``dest`` is an
        existing directory, a file artifact is written inside it under its stored name.

        Raises:
            ChecksumMismatchError: the stored bytes are corrupt; ``dest`` is untouched.
            StorageError: the backend failed or the bytes are gone.
        """
        record = self._artifact(artifact)
        backend = self.storage_backend(record.storage_backend)
        version = self.get_version(record.model_version_id)
        target = Path(dest)
        if target.is_dir() and not is_directory_path(record.storage_path):
            target = target / record.storage_path.rsplit("/", 1)[-1]
        _transfers.download(backend, record, version, target, progress=progress)
        return target

    def artifact_url(self, artifact: Artifact | int, *, expires_in: int = 3600) -> str:
        """A URL to fetch the artifact from (presigned where the backend supports it)."""
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
            raise ValidationError.single("expires_in", "must be a whole number of seconds >= 1")
        record = self._artifact(artifact)
        return self.storage_backend(record.storage_backend).url(
            record.storage_path, expires_in=expires_in
        )

    def verify_artifact(self, artifact: Artifact | int) -> bool:
        """Read the stored bytes back: do they still match the recorded SHA-256?

        Raises:
            ValidationError: the artifact has no recorded checksum.
            StorageError: the bytes cannot be read.
        """
        record = self._artifact(artifact)
        if record.checksum is None:
            raise ValidationError.single(
                "artifact", f"artifact {record.id} has no recorded checksum to verify against"
            )
        return verify_artifact_files(
            self.storage_backend(record.storage_backend), record.storage_path, record.checksum
        )

    def delete_artifact(self, artifact: Artifact | int, *, keep_bytes: bool = False) -> None:
        """Delete the artifact's record, then its stored bytes.

        Args:
            keep_bytes: delete only the record (for artifacts registered by reference
                whose bytes belong to someone else).

        Raises:
            NotFoundError: there is no such artifact.
            ValidationError: its storage path leaves the backend's root, or an upload to
                that path is under way; nothing is deleted.
            ConfigurationError: this registry lacks the artifact's backend.
            StorageError: the backend failed.
        """
        record = self._artifact(artifact)
        if keep_bytes:
            store.artifacts.remove_artifact(self._db, record.id)
            return
        backend = self.storage_backend(record.storage_backend)
        _transfers.delete(self._db, backend, record, self.get_version(record.model_version_id))

    def _artifact(self, artifact: Artifact | int) -> Artifact:
        artifact_id = artifact.id if isinstance(artifact, Artifact) else artifact
        if isinstance(artifact_id, bool) or not isinstance(artifact_id, int):
            raise ValidationError.single("artifact", "pass an Artifact or an artifact id")
        return store.artifacts.get_artifact(self._db, artifact_id)

    def hash_config(self, training_config: object) -> str:
        """The config hash :meth:`register` would compute for ``training_config``."""
        return hash_config(training_config)


def _aware(value: object, *, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError.single(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError.single(
            field, "must be timezone-aware, e.g. datetime(2026, 11, 1, tzinfo=UTC)"
        )
    return value


def _reason(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValidationError.single("reason", "must be a string or None")
    return value
