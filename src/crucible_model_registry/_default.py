"""The process-wide default registry behind the module-level functions."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from crucible_model_registry.registry import Registry

__all__ = ["configure", "delegate", "get_registry"]

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_current: list[Registry] = []  # at most one: the default registry, once there is one


def configure(registry: Registry | None) -> None:
    """Make ``registry`` the default for the module-level functions (None: back to settings)."""
    with _lock:
        _current[:] = [] if registry is None else [registry]


def get_registry() -> Registry:
    """The default registry, created on first use from the ``CMR_*`` settings."""
    current = _current
    if current:
        return current[0]
    with _lock:
        if not _current:
            _current.append(Registry.from_settings())
        return _current[0]


def delegate(method: Callable[Concatenate[Registry, P], R]) -> Callable[P, R]:
    """A module-level function that calls ``method`` on the default registry at call time."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        # Looked up on the instance: a RemoteRegistry overrides the artifact methods.
        bound: Callable[P, R] = getattr(get_registry(), method.__name__)
        return bound(*args, **kwargs)

    # help() and IDEs show the method's signature without its ``self``.
    signature = inspect.signature(method)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return call
