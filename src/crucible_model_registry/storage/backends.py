"""Backend name -> factory: the built-ins as import strings and plugins from entry points, lazily.

A settings name (``CMR_STORAGE_BACKEND``) and an options mapping (``CMR_STORAGE_OPTIONS``)
become a backend through :func:`create_backend`. Built-in backends are import strings, so
boto3 and huggingface_hub load only when their backend is chosen. Third-party backends
publish an entry point in the group ``crucible_model_registry.storage``, named as users
write it (``gcs = "crucible_gcs:GcsStorage"``); the group is read on the first lookup of a
name that is not built in, never at import. Built-in names are reserved.

Options are checked against the factory's signature and type annotations (with pydantic)
before the factory runs, so bad settings fail before any I/O.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import threading
import typing
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import pydantic

from crucible_model_registry.errors import ConfigurationError
from crucible_model_registry.storage.base import StorageBackend

__all__ = [
    "BUILTIN_BACKENDS",
    "ENTRY_POINT_GROUP",
    "available_backends",
    "backend_factory",
    "create_backend",
    "validate_options",
]

ENTRY_POINT_GROUP: Final = "crucible_model_registry.storage"

BUILTIN_BACKENDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "huggingface": "crucible_model_registry.storage.huggingface:HuggingFaceStorage",
        "local": "crucible_model_registry.storage.local:LocalStorage",
        "noop": "crucible_model_registry.storage.noop:NoopStorage",
        "s3": "crucible_model_registry.storage.s3:S3Storage",
    }
)

# Built-in backend -> (top-level modules of its SDK, the extra that installs them).
_EXTRAS: Final[Mapping[str, tuple[frozenset[str], str]]] = MappingProxyType(
    {
        "s3": (frozenset({"boto3", "botocore", "s3transfer"}), "s3"),
        "huggingface": (frozenset({"huggingface_hub", "hf_xet"}), "hf"),
    }
)

BackendFactory = Callable[..., StorageBackend]

_plugins: dict[str, importlib.metadata.EntryPoint] | None = None
_lock = threading.Lock()


def _plugin_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The plugin entry points by name, read once; built-in names are skipped with a warning."""
    global _plugins  # noqa: PLW0603 - a process-wide cache of installed distributions
    with _lock:
        if _plugins is None:
            found: dict[str, importlib.metadata.EntryPoint] = {}
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in BUILTIN_BACKENDS:
                    warnings.warn(
                        f"storage backend plugin {ep.value!r} claims the built-in name "
                        f"{ep.name!r} and is ignored; publish it under another name",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    continue
                found.setdefault(ep.name, ep)
            _plugins = found
        return _plugins


def available_backends() -> list[str]:
    """Every backend name that can be chosen: the built-ins and the installed plugins."""
    return sorted({*BUILTIN_BACKENDS, *_plugin_entry_points()})


def _import_builtin(name: str, target: str) -> BackendFactory:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        sdk, extra = _EXTRAS.get(name, (frozenset(), ""))
        if missing in sdk:
            raise ConfigurationError(
                f"storage backend {name!r} needs {missing}, which is not installed; "
                f"run: pip install 'crucible-model-registry[{extra}]'"
            ) from exc
        raise ConfigurationError(
            f"storage backend {name!r} cannot be loaded ({type(exc).__name__}: {exc})"
        ) from exc
    factory: BackendFactory = getattr(module, attr)
    return factory


def backend_factory(name: str) -> BackendFactory:
    """The class (or factory) behind a backend name.

    Raises:
        ConfigurationError: the name is unknown (the message lists the choices), its
            optional extra is not installed (the message names the ``pip install``), or
            its plugin fails to load.
    """
    target = BUILTIN_BACKENDS.get(name)
    if target is not None:
        return _import_builtin(name, target)
    ep = _plugin_entry_points().get(name)
    if ep is None:
        raise ConfigurationError(
            f"unknown storage backend {name!r}; choose one of: "
            + ", ".join(available_backends())
            + f" (plugins register under the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    try:
        loaded = ep.load()
    except Exception as exc:  # a third-party import can fail in any way
        dist = ep.dist.name if ep.dist is not None else ep.value
        raise ConfigurationError(
            f"storage backend plugin {name!r} ({dist}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(loaded):
        raise ConfigurationError(f"storage backend plugin {name!r} ({ep.value}) is not callable")
    factory: BackendFactory = loaded
    return factory


def _options_model(factory: BackendFactory) -> type[pydantic.BaseModel]:
    """A pydantic model of the factory's keyword-passable parameters and their annotations."""
    init = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(init)
    except (NameError, TypeError, AttributeError):  # unresolvable plugin annotations: any value
        hints = {}
    fields: dict[str, Any] = {}
    extra: typing.Literal["forbid", "allow"] = "forbid"
    for param in inspect.signature(factory).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
        if param.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (hints.get(param.name, Any), default)
    return pydantic.create_model(
        f"{getattr(factory, '__name__', 'Backend')}Options",
        __config__=pydantic.ConfigDict(extra=extra, arbitrary_types_allowed=True),
        **fields,
    )


def validate_options(
    name: str, factory: BackendFactory, options: Mapping[str, object]
) -> dict[str, object]:
    """Check ``options`` against the factory's signature; return the keyword arguments.

    Raises:
        ConfigurationError: an option is unknown, missing or of the wrong type. The message
            names each offending option, never its value (it may be a secret).
    """
    model = _options_model(factory)
    try:
        validated = model.model_validate(dict(options))
    except pydantic.ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in err['loc']) or 'options'}: "
            + ("unknown option" if err["type"] == "extra_forbidden" else err["msg"])
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        accepted = ", ".join(model.model_fields) or "none"
        raise ConfigurationError(
            f"invalid options for storage backend {name!r}: {'; '.join(problems)} "
            f"(accepted options: {accepted})"
        ) from None  # the pydantic error would repeat the values, secrets included
    kwargs = {field: getattr(validated, field) for field in validated.model_fields_set}
    kwargs.update(validated.model_extra or {})
    return kwargs


def create_backend(name: str, options: Mapping[str, object] | None = None) -> StorageBackend:
    """Build the backend called ``name`` from a mapping of options.

    Args:
        name: ``local``, ``s3``, ``huggingface``, ``noop`` or an installed plugin's name.
        options: keyword arguments of the backend (``{"bucket": ..., "region": ...}``).

    Returns:
        The backend, not yet connected to anything.

    Raises:
        ConfigurationError: unknown name, missing optional extra, or invalid options.
    """
    factory = backend_factory(name)
    kwargs = validate_options(name, factory, options or {})
    backend = factory(**kwargs)
    if not isinstance(backend, StorageBackend):
        raise ConfigurationError(
            f"storage backend {name!r} built a {type(backend).__name__}, which lacks the "
            "StorageBackend methods (upload, download, delete, exists, url)"
        )
    return backend
