"""Settings from ``CMR_*`` environment variables, and the embedded default's paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from crucible_model_registry.domain.redaction import redact, redact_options
from crucible_model_registry.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

APP_NAME = "crucible-model-registry"


def _default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class Settings(BaseSettings):
    """Where the registry keeps its metadata and its artifact bytes."""

    model_config = SettingsConfigDict(env_prefix="CMR_", extra="ignore")

    home: Path = pydantic.Field(default_factory=_default_home)
    database_url: str | None = None
    storage_backend: str = "local"
    storage_options: dict[str, Any] = pydantic.Field(default_factory=dict)
    server_url: str | None = None
    """``CMR_SERVER_URL``: a registry server; when set, the default registry is remote."""
    token: pydantic.SecretStr | None = None
    """``CMR_TOKEN``: the bearer token sent to ``server_url`` (never printed)."""
    # Further backends for artifacts recorded elsewhere: name -> options (CMR_STORAGES).
    storages: dict[str, dict[str, Any]] = pydantic.Field(default_factory=dict)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() show the database password and secret options masked, as
        # pydantic's SecretStr would, while the fields stay plain values for the code.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                yield name, redact(value)
            elif name == "storage_options" and isinstance(value, dict):
                yield name, redact_options(value)
            else:
                yield name, value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    def create_home(self) -> None:
        """Create ``home`` (and its parents) if missing, for the embedded default.

        Raises:
            ConfigurationError: naming ``CMR_HOME`` when the directory cannot be created.
        """
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigurationError(
                f"cannot create the registry's home directory CMR_HOME={str(self.home)!r} "
                f"({reason}); set CMR_HOME to a directory you can write, unset it to use "
                f"{str(_default_home())!r}, or give --database-url / CMR_DATABASE_URL"
            ) from exc

    @property
    def is_embedded(self) -> bool:
        """True when no database URL was given: the zero set-up SQLite default."""
        return self.database_url is None

    @property
    def resolved_storage_options(self) -> dict[str, Any]:
        """Backend options; local storage defaults to ``home/artifacts``."""
        options = dict(self.storage_options)
        if self.storage_backend == "local":
            options.setdefault("base_path", str(self.home / "artifacts"))
        return options


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides on top.

    Raises:
        ConfigurationError: for a malformed variable (e.g. CMR_STORAGE_OPTIONS not a JSON object).
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        # Raised for a variable that is not valid JSON, e.g. CMR_STORAGE_OPTIONS='bucket=x'.
        raise ConfigurationError(
            f"bad registry settings: {exc}; CMR_STORAGE_OPTIONS must be a JSON object"
        ) from exc
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"CMR_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"bad registry settings: {problems}") from exc
