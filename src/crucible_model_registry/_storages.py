"""The storage backends one Registry can reach, by name, created from settings on first use."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from crucible_model_registry.errors import ConfigurationError

if TYPE_CHECKING:
    from crucible_model_registry.settings import Settings
    from crucible_model_registry.storage.base import StorageBackend

__all__ = ["StorageSet"]


class StorageSet:
    """A registry's default backend plus any others it was given.

    Each artifact record names its backend; downloading it needs a backend of that name.
    Without an explicit default, the ``CMR_STORAGE_*`` settings describe it.
    """

    def __init__(
        self,
        default: StorageBackend | None,
        others: Sequence[StorageBackend] = (),
        settings: Settings | None = None,
    ) -> None:
        self._default = default
        self._others = {b.name: b for b in others}
        self._settings = settings
        self._lock = threading.Lock()

    def default(self) -> StorageBackend:
        """The backend uploads go to unless told otherwise."""
        if self._default is None:
            with self._lock:
                if self._default is None:
                    self._default = self._from_settings()
        return self._default

    def get(self, name: str | None) -> StorageBackend:
        """The backend called ``name`` (None: the default).

        A registry made from settings also reaches the backends ``CMR_STORAGES`` describes
        (``{"s3": {"bucket": ...}}``), and local storage under ``CMR_HOME`` (the embedded
        default's), so that artifacts recorded on several backends can all be read.

        Raises:
            ConfigurationError: none of this registry's backends has that name.
        """
        default = self.default()
        if name is None or name == default.name:
            return default
        backend = self._others.get(name) or self._from_extra_settings(name)
        if backend is None:
            known = sorted({default.name, *self._others, *self._configured()})
            raise ConfigurationError(
                f"this registry has no {name!r} storage backend (it has {', '.join(known)}); "
                f"pass it to Registry(..., storages=[...]), or describe it in CMR_STORAGES "
                f"(a JSON object: {{{name!r}: {{...its options...}}}})"
            )
        return backend

    def all(self) -> list[StorageBackend]:
        """The default backend, then every other one this registry was given or configured."""
        default = self.default()
        for name in self._configured():
            self.get(name)
        return [default, *(b for name, b in self._others.items() if name != default.name)]

    def _configured(self) -> list[str]:
        return sorted(self._settings.storages) if self._settings is not None else []

    def _from_extra_settings(self, name: str) -> StorageBackend | None:
        if self._settings is None:
            return None
        from crucible_model_registry.storage.backends import create_backend

        options = self._settings.storages.get(name)
        if options is None and name == "local":
            options = {}
        if options is None:
            return None
        if name == "local":
            options = {"base_path": str(self._settings.home / "artifacts"), **options}
        with self._lock:
            if name not in self._others:
                self._others[name] = create_backend(name, options)
            return self._others[name]

    def _from_settings(self) -> StorageBackend:
        from crucible_model_registry.settings import load_settings
        from crucible_model_registry.storage.backends import create_backend

        settings = self._settings or load_settings()
        if settings.storage_backend == "local":
            settings.home.mkdir(parents=True, exist_ok=True)
        options = settings.resolved_storage_options
        if not settings.storage_options and settings.storage_backend in settings.storages:
            # `--storage s3` picks the backend CMR_STORAGES describes, options and all.
            options = {**options, **settings.storages[settings.storage_backend]}
        return create_backend(settings.storage_backend, options)
