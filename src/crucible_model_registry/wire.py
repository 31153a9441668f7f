"""The one JSON form of records, query specs, pages, policies and errors, both directions.

``--json`` output, the REST API and the remote backend all speak it. :func:`to_json` turns
any of them (or lists and dicts of them) into plain JSON values; :func:`from_json` reads a
value of a given type back and checks every part of it: a malformed document raises
:class:`ValidationError` naming the offending field, never ``KeyError`` or ``TypeError``.

- A record (``Model``, ``ModelVersion``, ``Artifact``, ``LineageEdge``, ``StageTransition``,
  ``AliasChange``, ``PromotionResult``, ``LineageHit``) is its ``to_dict()``: its fields by
  name, datetimes in ISO 8601 with their offset, enums by value.
- ``LineageGraph`` is ``{"focus", "ancestors", "descendants", "edges"}`` of those records
  (``LineageGraph.to_dict()`` is the drawing form, with node ids, for scripts).
- ``Page`` is ``{"items": [...], "next_cursor": str | null}``; ``PolicyChange`` and
  ``IntegrityReport`` are their fields.
- ``QuerySpec`` is ``QuerySpec.to_json()``: the whole DSL (``all``/``any``/``not``, leaves,
  lineage predicates), ``order``, ``limit``, ``offset``. ``PromotionPolicy`` is
  ``to_dict()``.
- An error is ``{"error": {"type": class name, "message": str, "details": {...}}}``;
  the details are the error's ``detail_fields``, records among them in their JSON form.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
from collections.abc import Callable, Collection, Hashable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from crucible_model_registry import errors
from crucible_model_registry.domain.config_hash import JSONValue
from crucible_model_registry.domain.lineage import LineageGraph
from crucible_model_registry.domain.policy import PromotionPolicy
from crucible_model_registry.domain.query_spec import QuerySpec
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.errors import RegistryError, ValidationError

__all__ = ["ERROR_TYPES", "error_from_json", "error_to_json", "from_json", "to_json"]

T = TypeVar("T")

ERROR_TYPES: Mapping[str, type[RegistryError]] = {
    name: cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, RegistryError)
}
"""Every public error class by its name, the ``type`` of an error document."""


# --------------------------------------------------------------------------- out


def to_json(value: object) -> JSONValue:
    """Plain JSON values for a record, spec, policy, page, graph, error, or containers of them.

    Raises:
        TypeError: ``value`` holds something with no JSON form here.
    """
    match value:
        case None | bool() | int() | str():
            return value
        case float():
            if not math.isfinite(value):
                raise TypeError(f"{value!r} has no JSON form")
            return value
        case enum.Enum():
            return to_json(value.value)
        case datetime():
            return value.isoformat()
        case RegistryError():
            return error_to_json(value)
        case QuerySpec():
            return value.to_json()
        case PromotionPolicy():
            return value.to_dict()
        case Mapping():
            return {str(k): to_json(v) for k, v in value.items()}
        case list() | tuple():
            return [to_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict) and not isinstance(value, LineageGraph):
            # A record's JSON form is its to_dict(), so the two can never differ.
            return cast("JSONValue", to_dict())
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} has no JSON form")


def error_to_json(error: RegistryError) -> dict[str, JSONValue]:
    """``{"error": {"type", "message", "details"}}`` for a registry error."""
    details: dict[str, JSONValue] = {}
    for name, value in error.details().items():
        if isinstance(value, RegistryError):
            details[name] = error_to_json(value)
        elif isinstance(value, BaseException):  # e.g. what a pipeline stage raised
            details[name] = {
                "error": {"type": type(value).__name__, "message": str(value), "details": {}}
            }
        elif name == "ref" and not isinstance(value, int | str):
            details[name] = str(value)
        else:
            details[name] = to_json(value)
    return {"error": {"type": type(error).__name__, "message": str(error), "details": details}}


# --------------------------------------------------------------------------- in


def from_json(kind: type[T], data: object, *, field: str | None = None) -> T:
    """Read a ``kind`` (a record, ``QuerySpec``, ``PromotionPolicy``, ``Page``, ...) back.

    Args:
        field: how error messages name the document (default: the type's name).

    Raises:
        ValidationError: the document is not a ``kind``; the field names the bad part.
    """
    decode = _decoder(cast("Hashable", kind))
    return cast(T, decode(data, field or kind.__name__))


def error_from_json(data: object) -> RegistryError:
    """The error an error document describes: its class, message and attributes.

    An unknown ``type`` (from a newer server, say) gives a plain :class:`RegistryError`
    with the message.

    Raises:
        ValidationError: ``data`` is not an error document.
    """
    keys = ("type", "message", "details")
    body = _object(data, "document", required=["error"], allowed=["error"])["error"]
    body = _object(body, "error", required=keys, allowed=keys)
    name = _str(body["type"], "error.type")
    message = _str(body["message"], "error.message")
    cls = ERROR_TYPES.get(name)
    if cls is None:
        _object(body["details"], "error.details")
        return RegistryError(f"{name}: {message}")
    fields = cls.detail_fields
    given = _object(body["details"], "error.details", required=fields, allowed=fields)
    decoders = _DETAILS.get(cls, {})
    values = {
        key: decoders.get(key, _json_value)(given[key], f"error.details.{key}")
        for key in cls.detail_fields
    }
    return cls.restore(message, values)


# --------------------------------------------------------------------------- decoders

Decoder = Callable[[object, str], Any]


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError.single(field, message)


def _object(
    data: object,
    field: str,
    *,
    required: Collection[str] = (),
    allowed: Collection[str] | None = None,
) -> dict[str, Any]:
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise _fail(field, "must be a JSON object")
    missing = sorted(set(required) - set(data))
    if missing:
        raise _fail(field, f"missing key(s) {missing}")
    unknown = [] if allowed is None else sorted(set(data) - set(allowed))
    if unknown:
        raise _fail(field, f"unknown key(s) {unknown}")
    return dict(data)


def _str(data: object, field: str) -> str:
    if not isinstance(data, str):
        raise _fail(field, "must be a string")
    return data


def _int(data: object, field: str) -> int:
    if isinstance(data, bool) or not isinstance(data, int):
        raise _fail(field, "must be a whole number")
    return data


def _float(data: object, field: str) -> float:
    if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
        raise _fail(field, "must be a finite number")
    return float(data)


def _bool(data: object, field: str) -> bool:
    if not isinstance(data, bool):
        raise _fail(field, "must be true or false")
    return data


def _datetime(data: object, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_str(data, field))
    except ValueError:
        raise _fail(field, "must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _fail(field, "must carry a UTC offset")
    return moment


def _json_value(data: object, field: str) -> JSONValue:
    if data is None or isinstance(data, bool | int | str):
        return data
    if isinstance(data, float):
        return _float(data, field)
    if isinstance(data, list):
        return [_json_value(v, f"{field}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, Mapping):
        return {k: _json_value(v, f"{field}.{k}") for k, v in _object(data, field).items()}
    raise _fail(field, "must be a JSON value")


def _enum(kind: type[enum.Enum]) -> Decoder:
    def decode(data: object, field: str) -> enum.Enum:
        try:
            return kind(_str(data, field))
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            raise _fail(field, f"{data!r} is not one of {choices}") from None

    return decode


def _optional(inner: Decoder) -> Decoder:
    return lambda data, field: None if data is None else inner(data, field)


def _list(inner: Decoder, *, as_tuple: bool = False) -> Decoder:
    def decode(data: object, field: str) -> list[Any] | tuple[Any, ...]:
        if not isinstance(data, list):
            raise _fail(field, "must be a list")
        items = [inner(v, f"{field}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if as_tuple else items

    return decode


def _one_of(choices: tuple[object, ...]) -> Decoder:
    def decode(data: object, field: str) -> object:
        if isinstance(data, bool) or data not in choices:
            raise _fail(field, f"{data!r} is not one of {', '.join(map(str, choices))}")
        return data

    return decode


def _dict(inner: Decoder) -> Decoder:
    def decode(data: object, field: str) -> dict[str, Any]:
        return {k: inner(v, f"{field}.{k}") for k, v in _object(data, field).items()}

    return decode


def _dataclass(kind: type[Any]) -> Decoder:
    hints = get_type_hints(kind)
    fields = [f for f in dataclasses.fields(kind) if f.init]
    decoders = {f.name: _decoder(hints[f.name]) for f in fields}
    required = {
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }

    def decode(data: object, field: str) -> object:
        given = _object(data, field, required=required, allowed=decoders)
        return kind(**{k: decoders[k](v, f"{field}.{k}") for k, v in given.items()})

    return decode


def _nested(read: Callable[[dict[str, Any]], Any]) -> Decoder:
    """A decoder from a reader of a whole object that names fields from its own root."""

    def decode(data: object, field: str) -> Any:
        given = _object(data, field)
        try:
            return read(given)
        except ValidationError as exc:
            raise ValidationError({f"{field}.{k}": m for k, m in exc.errors.items()}) from None

    return decode


_spec = _nested(QuerySpec.from_json)
_policy = _nested(PromotionPolicy.from_dict)
_nested_error = _nested(error_from_json)


_SCALARS: dict[object, Decoder] = {
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    datetime: _datetime,
    Any: _json_value,
    QuerySpec: _spec,
    PromotionPolicy: _policy,
}


@functools.cache
def _decoder(kind: Any) -> Decoder:
    if kind in _SCALARS:
        return _SCALARS[kind]
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"no JSON decoder for {kind!r}")
        return _optional(_decoder(rest[0]))
    if origin is Literal:
        return _one_of(args)
    if origin is list:
        return _list(_decoder(args[0]))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _list(_decoder(args[0]), as_tuple=True)
    if origin is dict and args[0] is str:
        return _dict(_decoder(args[1]))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return _enum(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind)
    raise TypeError(f"no JSON decoder for {kind!r}")


def _str_or_int(data: object, field: str) -> str | int:
    if isinstance(data, str):
        return data
    return _int(data, field)


_DETAILS: dict[type[RegistryError], dict[str, Decoder]] = {
    errors.ValidationError: {"errors": _dict(_list(_str))},
    errors.NotFoundError: {"kind": _str, "ref": _str_or_int},
    errors.DuplicateVersionError: {"model_name": _str, "version": _str},
    errors.DuplicateModelError: {"model_name": _str},
    errors.DuplicateConfigError: {"existing": _decoder(ModelVersion)},
    errors.LineageCycleError: {"parent_id": _int, "child_id": _int},
    errors.StorageError: {"backend": _str},
    errors.ChecksumMismatchError: {"backend": _str, "path": _str, "expected": _str, "actual": _str},
    errors.PromotionDeniedError: {"version_ref": _str, "target": _str, "unmet": _list(_str)},
    errors.SchemaNotReadyError: {"command": _str},
    errors.StageFailedError: {"stage": _str, "index": _int, "error": _nested_error},
}
"""How each error's details are read back (a field not named here is any JSON value)."""
