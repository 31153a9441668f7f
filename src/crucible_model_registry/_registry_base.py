"""The registry's foundation: its database and storages, schema checks, and version lookup.

``Registry`` (``registry.py``) is this plus the methods of ``_registry_lineage`` and
``_registry_artifacts``; the split keeps each module readable in one sitting.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from crucible_model_registry import store
from crucible_model_registry._storages import StorageSet
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.specs import ref_of
from crucible_model_registry.errors import ValidationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from crucible_model_registry.settings import Settings
    from crucible_model_registry.storage.base import StorageBackend
    from crucible_model_registry.store.engine import Database

__all__ = ["RegistryBase", "VersionLike"]

VersionLike = ModelVersion | int | str
"""A version record, its id, or a ref string (``"model@1.0"``, ``"model@production"``)."""


class RegistryBase:
    """What every part of ``Registry`` stands on; see ``Registry`` for the arguments."""

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
    ) -> Self:
        """A registry on the database at ``url`` (any SQLAlchemy URL).

        Raises:
            ConfigurationError: for a malformed URL or a missing driver.
        """
        engine = store.engine.create_registry_engine(
            url, create_missing=auto_migrate, **engine_options
        )
        return cls(engine, storage=storage, storages=storages, auto_migrate=auto_migrate)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Self:
        """The registry the ``CMR_*`` settings describe; the embedded default migrates itself."""
        # pydantic-settings costs ~0.1 s to import: only the default registry pays for it.
        from crucible_model_registry.settings import load_settings

        settings = settings or load_settings()
        if settings.is_embedded:
            settings.create_home()
        engine = store.engine.create_registry_engine(
            settings.resolved_database_url, create_missing=settings.is_embedded
        )
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
                        with store.engine.creating_database():
                            if store.schema.current_revision(self.engine) != (
                                store.schema.HEAD_REVISION
                            ):
                                store.schema.migrate(self.engine)
                    else:
                        store.schema.check_schema(self.engine)
                    self._schema_ready = True
        return self._database

    def migrate(self) -> None:
        """Create or upgrade the registry's tables (and only those) to this release's schema.

        The only call (with ``auto_migrate``) that may create a missing SQLite file.
        """
        store.schema.migrate(self.engine)
        self._schema_ready = True

    def close(self) -> None:
        """Release the engine's pooled connections."""
        self.engine.dispose()

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


def _aware(value: object, *, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError.single(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError.single(
            field, "must be timezone-aware, e.g. datetime(2026, 11, 1, tzinfo=UTC)"
        )
    return value
