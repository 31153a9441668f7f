"""One ``cmr`` invocation's global options, the registry they select, and what goes to stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry import _gc
from crucible_model_registry.domain.redaction import redact

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.registry import Registry
    from crucible_model_registry.settings import Settings

__all__ = [
    "CommandError",
    "JsonFlag",
    "Session",
    "current",
    "emit",
    "print_json",
    "reset",
    "stdout_console",
    "warn",
]

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")
]


class CommandError(Exception):
    """A command's own failure that is not a registry error (exit code 1, one line)."""


@dataclass(repr=False)
class Session:
    """The global options of this invocation; the registry is opened on first use."""

    database_url: str | None = None
    storage: str | None = None
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    json: bool = False
    quiet: bool = False
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _registry: Registry | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        url = None if self.database_url is None else redact(self.database_url)
        return (
            f"Session(database_url={url!r}, storage={self.storage!r}, json={self.json!r}, "
            f"quiet={self.quiet!r}, debug={self.debug!r}, settings={self._settings!r})"
        )

    def settings(self) -> Settings:
        """``CMR_*`` settings with ``--database-url`` and ``--storage`` on top."""
        if self._settings is None:
            # pydantic-settings and SQLAlchemy load here, not at import: `cmr --help` stays fast.
            from crucible_model_registry.settings import load_settings

            try:
                self._settings = load_settings(
                    database_url=self.database_url,
                    storage_backend=self.storage,
                    server_url=self.server,
                    token=self.token,
                )
            except ValueError as exc:  # pydantic-settings' SettingsError: a variable is not JSON
                from crucible_model_registry.errors import ConfigurationError

                raise ConfigurationError(f"bad registry settings: {exc}") from exc
        return self._settings

    def registry(self) -> Registry:
        """The registry these options select (the embedded default migrates itself)."""
        if self._registry is None:
            from crucible_model_registry.registry import Registry

            self._registry = Registry.from_settings(self.settings())
            _gc.resume()  # the heavy imports are behind us
        return self._registry

    def wants_json(self, flag: bool = False) -> bool:
        """``--json`` given globally or to the command."""
        return self.json or flag

    def close(self) -> None:
        """Release the registry's connections, if one was opened."""
        if self._registry is not None:
            self._registry.close()
            self._registry = None


_current = [Session()]


def current() -> Session:
    """The session of the running invocation."""
    return _current[0]


def reset(session: Session | None = None) -> Session:
    """Start a new invocation (``main`` calls this once, before parsing)."""
    _current[0].close()
    _current[0] = session or Session()
    return _current[0]


def stdout_console() -> Console:
    """A rich console on stdout, for people (no colour when stdout is not a terminal)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def emit(
    data: object,
    *,
    json_flag: bool = False,
    human: Callable[[Console], None],
    quiet: Iterable[object] = (),
) -> None:
    """Print a result once: JSON for scripts, ``quiet`` lines with ``--quiet``, else ``human``.

    Args:
        data: records (or plain values holding records) for ``--json``.
        json_flag: the command's own ``--json``.
        human: draws the result for people on a rich console.
        quiet: what ``--quiet`` prints, one item a line (usually ids).
    """
    session = current()
    if session.wants_json(json_flag):
        print_json(data)
    elif session.quiet:
        for item in quiet:
            sys.stdout.write(f"{item}\n")
    else:
        human(stdout_console())


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (stdout stays the command's result)."""
    sys.stderr.write(f"warning: {' '.join(message.split())}\n")


def print_json(data: object) -> None:
    """One JSON document on stdout, in the wire form the REST API speaks (``wire.py``)."""
    from crucible_model_registry.wire import to_json

    sys.stdout.write(json.dumps(to_json(data), indent=2, sort_keys=False) + "\n")
