"""Training-config normalisation, RFC 8785 canonical JSON and its SHA-256: the dedup key."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import pathlib
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import rfc8785

from crucible_model_registry.errors import ValidationError

__all__ = ["canonical_json", "hash_config", "normalize_config"]

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


def normalize_config(value: object, *, path: str = "training_config") -> JSONValue:
    """Turn a training config into plain JSON values.

    Dataclasses, pydantic models, enums, paths, UUIDs, dates, decimals, tuples, sets and
    numpy scalars/arrays are converted; anything else without a JSON form is rejected.

    Raises:
        ValidationError: naming the path of the offending value.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return normalize_config(value.value, path=path)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError.single(path, f"{value!r} has no JSON form (NaN/Infinity)")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for raw_key, item in value.items():
            key = raw_key.value if isinstance(raw_key, enum.Enum) else raw_key
            if not isinstance(key, str):
                raise ValidationError.single(
                    path, f"key {key!r} is not a string; JSON objects need string keys"
                )
            out[key] = normalize_config(item, path=f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [normalize_config(v, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [normalize_config(v, path=f"{path}[]") for v in value]
        return sorted(items, key=canonical_json)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return normalize_config(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, path=path
        )
    if isinstance(value, pathlib.PurePath):
        return value.as_posix()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return normalize_config(float(value), path=path)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):  # a pydantic v2 model
        return normalize_config(model_dump(mode="json"), path=path)
    numpy_item = _numpy_value(value)
    if numpy_item is not _NO_VALUE:
        return normalize_config(numpy_item, path=path)
    raise ValidationError.single(
        path, f"a {type(value).__name__} has no JSON form; use numbers, strings, lists or maps"
    )


_NO_VALUE: Any = object()


def _numpy_value(value: object) -> Any:
    # numpy is never imported here: a numpy object already carries its module name.
    if type(value).__module__ != "numpy":
        return _NO_VALUE
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else _NO_VALUE


def canonical_json(value: JSONValue) -> bytes:
    """The RFC 8785 (JCS) serialisation of already-normalised JSON values.

    Raises:
        ValidationError: for integers beyond ±(2**53 - 1), lone surrogates and the like.
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise ValidationError.single("training_config", f"cannot canonicalise: {exc}") from exc


def hash_config(training_config: object) -> str:
    """SHA-256 hex of the canonical JSON of a training config; key order never matters.

    Raises:
        ValidationError: if the config holds NaN/Infinity or a value with no JSON form.
    """
    return hashlib.sha256(canonical_json(normalize_config(training_config))).hexdigest()
