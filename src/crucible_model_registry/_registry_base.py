"""The registry's foundation: its metadata backend and storages, and version lookup.

``Registry`` (``registry.py``) is this plus the methods of ``_registry_lineage`` and
``_registry_artifacts``; the split keeps each module readable in one sitting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from crucible_model_registry._context import current_actor, current_principal, current_request_id
from crucible_model_registry._storages import StorageSet
from crucible_model_registry.backends.sql import SqlBackend
from crucible_model_registry.domain.access import Principal, Role
from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.query_conditions import AnyOf, FieldEquals
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.specs import ref_of
from crucible_model_registry.errors import (
    ConfigurationError,
    PermissionDeniedError,
    RegistryError,
    ValidationError,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from crucible_model_registry.backends.base import MetadataBackend
    from crucible_model_registry.domain.query_spec import QuerySpec
    from crucible_model_registry.domain.refs import VersionRef
    from crucible_model_registry.settings import Settings
    from crucible_model_registry.storage.base import StorageBackend

__all__ = ["RegistryBase", "VersionLike", "aware"]

VersionLike = ModelVersion | int | str
"""A version record, its id, or a ref string (``"model@1.0"``, ``"model@production"``)."""


class RegistryBase:
    """What every part of ``Registry`` stands on; see ``Registry`` for the arguments."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        backend: MetadataBackend | None = None,
        storage: StorageBackend | None = None,
        storages: Sequence[StorageBackend] = (),
        auto_migrate: bool = False,
        settings: Settings | None = None,
    ) -> None:
        if backend is None:
            if engine is None:
                raise ConfigurationError("give Registry an engine= or a backend=")
            backend = SqlBackend(engine, auto_migrate=auto_migrate)
        elif engine is not None or auto_migrate:
            raise ConfigurationError(
                "give Registry engine= (with auto_migrate=) or backend=, not both"
            )
        self._backend: MetadataBackend = backend
        self._storages = StorageSet(storage, storages, settings)

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
        backend = SqlBackend.from_url(url, auto_migrate=auto_migrate, **engine_options)
        return cls(backend=backend, storage=storage, storages=storages)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Self:
        """The registry the ``CMR_*`` settings describe; the embedded default migrates itself."""
        # pydantic-settings costs ~0.1 s to import: only the default registry pays for it.
        from crucible_model_registry.settings import load_settings

        settings = settings or load_settings()
        if settings.is_embedded:
            settings.create_home()
        backend = SqlBackend.from_url(
            settings.resolved_database_url, auto_migrate=settings.is_embedded
        )
        return cls(backend=backend, settings=settings)

    def __repr__(self) -> str:
        return f"Registry({self._backend.describe()!r})"

    @property
    def backend(self) -> MetadataBackend:
        """Where this registry's metadata lives (a :class:`SqlBackend` unless given)."""
        return self._backend

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine the registry uses.

        Raises:
            ConfigurationError: the registry's metadata is not in a SQL database.
        """
        if not isinstance(self._backend, SqlBackend):
            raise ConfigurationError(f"{self!r} has no SQL engine: its backend is not SQL")
        return self._backend.engine

    def _by(self) -> Attribution:
        """Who makes the write about to be made: the actor and the server request's id."""
        return Attribution(current_actor(), current_request_id())

    def migrate(self) -> None:
        """Create or upgrade the registry's tables (and only those) to this release's schema."""
        self._authorize(Role.ADMIN, None, action="migrate")
        self._backend.migrate()

    def close(self) -> None:
        """Release the backend's pooled connections."""
        self._backend.close()

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
            found = self._backend.get_version(ref_of(ref))
        else:
            found = self._backend.get_version(ref_of(ref), at=aware(at, field="at"))
        self._authorize(Role.READ, found.model_name, action="get_version", target=found.ref)
        return found

    # ----------------------------------------------------------------- access control

    def _authorize(
        self, needed: Role, model_name: str | None, *, action: str, target: str | None = None
    ) -> None:
        """Refuse unless the acting principal (if any) holds ``needed`` on ``model_name``.

        With no principal (library use: whoever holds the database) everything is allowed.
        ``model_name`` None: the operation spans every model. A refusal is audited.

        Raises:
            PermissionDeniedError: naming the role needed and the model.
        """
        principal = current_principal()
        if principal is None or principal.may(needed, model_name):
            return
        raise self._denied(principal, needed, model_name, action=action, target=target)

    def _authorize_ref(self, needed: Role, ref: VersionRef, *, action: str) -> None:
        """:meth:`_authorize` on the model of ``ref`` (read first only for an id ref)."""
        if current_principal() is None:
            return
        model, target = ref.model_name, str(ref)
        if model is None:
            found = self._backend.get_version(ref)
            model, target = found.model_name, found.ref
        self._authorize(needed, model, action=action, target=target)

    def _denied(
        self,
        principal: Principal,
        needed: Role,
        model_name: str | None,
        *,
        action: str,
        target: str | None,
    ) -> PermissionDeniedError:
        error = PermissionDeniedError(needed.value, model_name, principal=principal.name)
        # The refusal stands even if the log cannot be written.
        with contextlib.suppress(RegistryError):
            self._backend.record_audit(
                actor=principal.name,
                action=action,
                target=target or model_name or "*",
                details={"needed": needed.value, "role": principal.role.value},
                request_id=current_request_id(),
                outcome="denied",
            )
        return error

    def _visible(self, model_name: str) -> bool:
        """May the acting principal (if any) read this model?"""
        principal = current_principal()
        return principal is None or principal.sees(model_name)

    def _scoped_spec(self, spec: QuerySpec) -> QuerySpec:
        """``spec`` limited to the models the acting principal may read."""
        principal = current_principal()
        if principal is None or principal.all_models:
            return spec
        names = [m.name for m in self._backend.list_models() if principal.sees(m.name)]
        return spec.and_where(AnyOf(tuple(FieldEquals("model_name", n) for n in names)))


def aware(value: object, *, field: str) -> datetime:
    """``value`` checked to be a timezone-aware datetime.

    Raises:
        ValidationError: it is not a datetime, or it is naive.
    """
    if not isinstance(value, datetime):
        raise ValidationError.single(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError.single(
            field, "must be timezone-aware, e.g. datetime(2026, 11, 1, tzinfo=UTC)"
        )
    return value
