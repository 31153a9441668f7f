"""Registry: the facade over domain rules, the SQL store, artifact storage and telemetry."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crucible_model_registry import store, telemetry
from crucible_model_registry.domain.actor import current_actor
from crucible_model_registry.domain.config_hash import hash_config
from crucible_model_registry.domain.enums import Stage, parse_enum
from crucible_model_registry.domain.records import Model, ModelVersion, StageTransition
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.domain.rules import check_metrics, check_model_name, check_tags
from crucible_model_registry.domain.specs import OnDuplicate, new_version_from_input, ref_of
from crucible_model_registry.errors import ValidationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from crucible_model_registry.settings import Settings
    from crucible_model_registry.storage.base import StorageBackend
    from crucible_model_registry.store.engine import Database

__all__ = ["Registry", "VersionLike"]

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
        auto_migrate: create or upgrade the schema on first use instead of raising
            :class:`SchemaNotReadyError` (the embedded default does this).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        storage: StorageBackend | None = None,
        auto_migrate: bool = False,
        settings: Settings | None = None,
    ) -> None:
        self._database = store.engine.Database(engine)
        self._storage = storage
        self._auto_migrate = auto_migrate
        self._settings = settings
        self._schema_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        storage: StorageBackend | None = None,
        auto_migrate: bool = False,
        **engine_options: Any,
    ) -> Registry:
        """A registry on the database at ``url`` (any SQLAlchemy URL).

        Raises:
            ConfigurationError: for a malformed URL or a missing driver.
        """
        engine = store.engine.create_registry_engine(url, **engine_options)
        return cls(engine, storage=storage, auto_migrate=auto_migrate)

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
            result = store.versions.register(self._db, spec)
            op.metadata.update(version=result.version, stage=result.stage.value)
        return result

    def get_model(self, name: str) -> Model:
        """The model called ``name``.

        Raises:
            NotFoundError: there is no such model.
        """
        return store.versions.get_model(self._db, check_model_name(name, field="name"))

    def list_models(self) -> list[Model]:
        """Every model, by name."""
        return store.versions.list_models(self._db)

    def get_version(self, ref: VersionLike) -> ModelVersion:
        """A version by id, ``model@version``, ``model@<stage>``, ``model@latest`` or alias.

        Raises:
            ValidationError: ``ref`` is not a reference.
            NotFoundError: nothing matches it.
        """
        return store.versions.get_version(self._db, ref_of(ref))

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
            PromotionDeniedError: the model's promotion policy forbids it.
        """
        target = parse_enum(Stage, stage, field="stage")
        ref = ref_of(version, field="version")
        actor = current_actor()
        with telemetry.operation("promote", to_stage=target.value, actor=actor) as op:
            result = store.promotion.promote(
                self._db,
                ref,
                target,
                reason=reason,
                actor=actor,
                archive_existing=archive_existing,
            )
            op.metadata.update(
                model=result.version.model_name,
                version=result.version.version,
                from_stage=result.from_stage.value,
                archived=len(result.archived_ids),
            )
            if not result.changed:
                op.outcome = "unchanged"
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

        Raises:
            ValidationError: it is in production or has descendants and ``force`` is False.
        """
        store.versions.delete_version(
            self._db, ref_of(version, field="version"), force=force, actor=current_actor()
        )

    def hash_config(self, training_config: object) -> str:
        """The config hash :meth:`register` would compute for ``training_config``."""
        return hash_config(training_config)

    def _ref(self, value: VersionLike) -> VersionRef:
        return ref_of(value)
