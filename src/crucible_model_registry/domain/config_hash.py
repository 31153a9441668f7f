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

from crucible_model_registry.domain.rules import nfc, printable, short_repr, text_problem
from crucible_model_registry.errors import ValidationError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "canonical_json",
    "hash_config",
    "normalize_config",
]

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


MAX_CONFIG_DEPTH = 100
"""Maps and lists may nest at most this deep in a training config or metadata."""
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""The canonical JSON of a training config or metadata is at most this many bytes (4 MiB)."""


def normalize_config(value: object, *, path: str = "training_config") -> JSONValue:
    """Turn a training config into plain JSON values.

    Dataclasses, pydantic models, enums, paths, UUIDs, dates, decimals, tuples, sets and
    numpy scalars/arrays are converted; anything else without a JSON form is rejected.
    Every string, key or value, is put in Unicode NFC, so that NFC and NFD spellings of a
    config are one config (and hash alike). Maps and lists nest at most
    :data:`MAX_CONFIG_DEPTH` levels and the whole is at most :data:`MAX_CONFIG_BYTES` of
    canonical JSON; the walk stops as soon as either is exceeded, however large the input
    (a structure that shares or contains itself included).

    Raises:
        ValidationError: naming the path of the offending value.
    """
    return _Normalizer(path).walk(value, path, 0)


class _Normalizer:
    """One walk over a config, with the bytes of canonical JSON it has produced so far."""

    def __init__(self, root: str) -> None:
        self.root = root
        # A lower bound of the canonical size: never above it, so nothing within the
        # limit is refused, and it grows by at least one byte a value, bounding the walk.
        self.size = 0

    def spend(self, nbytes: int) -> None:
        self.size += nbytes
        if self.size > MAX_CONFIG_BYTES:
            raise ValidationError.single(
                self.root,
                f"is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB as canonical JSON",
            )

    def text(self, value: str, path: str) -> str:
        problem = text_problem(value, controls=False)
        if problem:
            raise ValidationError.single(path, problem)
        self.spend(len(value) + 2)
        return nfc(value)

    def walk(self, value: object, path: str, depth: int) -> JSONValue:
        if value is None or isinstance(value, bool):
            self.spend(4)
            return value
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, enum.Enum):
            return self.walk(value.value, path, depth)
        if isinstance(value, int):
            self.spend(1)
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError.single(path, f"{value!r} has no JSON form (NaN/Infinity)")
            self.spend(1)
            return float(value)
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            if depth >= MAX_CONFIG_DEPTH:
                raise ValidationError.single(
                    self.root,
                    f"nests maps and lists more than {MAX_CONFIG_DEPTH} levels deep "
                    "(or contains itself)",
                )
            self.spend(2)
            if isinstance(value, Mapping):
                return self.mapping(value, path, depth + 1)
            if isinstance(value, list | tuple):
                return [self.walk(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
            items = [self.walk(v, f"{path}[]", depth + 1) for v in value]
            return sorted(items, key=canonical_json)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return self.walk(fields, path, depth)
        if isinstance(value, pathlib.PurePath):
            return self.text(value.as_posix(), path)
        if isinstance(value, uuid.UUID | datetime | date):
            return self.text(
                str(value) if isinstance(value, uuid.UUID) else value.isoformat(), path
            )
        if isinstance(value, Decimal):
            return self.walk(float(value), path, depth)
        model_dump = getattr(value, "model_dump", None)
        if callable(model_dump) and not isinstance(value, type):  # a pydantic v2 model
            try:
                dumped = model_dump(mode="json")
            except RecursionError:
                raise ValidationError.single(
                    path, f"nests more than {MAX_CONFIG_DEPTH} levels deep"
                ) from None
            return self.walk(dumped, path, depth)
        numpy_item = _numpy_value(value)
        if numpy_item is not _NO_VALUE:
            return self.walk(numpy_item, path, depth)
        raise ValidationError.single(
            path, f"a {type(value).__name__} has no JSON form; use numbers, strings, lists or maps"
        )

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        for raw_key, item in value.items():
            key = raw_key.value if isinstance(raw_key, enum.Enum) else raw_key
            if not isinstance(key, str):
                raise ValidationError.single(
                    path,
                    f"key {short_repr(key)} is not a string; JSON objects need string keys",
                )
            child = f"{path}.{printable(key)}"
            key = self.text(key, child)
            if key in out:
                raise ValidationError.single(
                    child, "is given twice: two spellings of one key in Unicode NFC"
                )
            self.spend(1)
            out[key] = self.walk(item, child, depth)
        return out


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
        out = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError, RecursionError) as exc:
        raise ValidationError.single("training_config", f"cannot canonicalise: {exc}") from exc
    if len(out) > MAX_CONFIG_BYTES:
        raise ValidationError.single(
            "training_config",
            f"is {len(out)} bytes as canonical JSON; the limit is {MAX_CONFIG_BYTES} (4 MiB)",
        )
    return out


def hash_config(training_config: object) -> str:
    """SHA-256 hex of the canonical JSON of a training config; key order never matters.

    Text is put in Unicode NFC first (keys and string values), so NFC and NFD spellings
    of one config hash alike; the hash of a config whose text is already NFC (all ASCII
    text is) is the same as before this normalisation existed.

    Raises:
        ValidationError: if the config holds NaN/Infinity, a value with no JSON form or a
            lone surrogate, nests more than 100 levels, or exceeds 4 MiB of canonical JSON.
    """
    return hashlib.sha256(canonical_json(normalize_config(training_config))).hexdigest()
