"""Checks on names, version strings, text, metrics, tags and ids shared by every entry point.

One rule set, applied before any SQL, so that every database accepts and refuses the same
input: lengths match the column sizes of ``store/tables.py``; text is normalised to Unicode
NFC (so NFC and NFD spellings are one value); lone surrogates, which no database can store,
and control characters are refused; whole numbers fit the database's 64-bit integers.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.errors import ValidationError

__all__ = [
    "MAX_ACTOR",
    "MAX_ALIAS",
    "MAX_BASE_MODEL",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ID",
    "MAX_LONG_TEXT",
    "MAX_METRIC_NAME",
    "MAX_MODEL_NAME",
    "MAX_RECIPE",
    "MAX_STORAGE_BACKEND",
    "MAX_STORAGE_PATH",
    "MAX_TAG",
    "MAX_VERSION",
    "RESERVED_REF_WORDS",
    "check_alias_name",
    "check_config_hash",
    "check_id",
    "check_local_path",
    "check_long_text",
    "check_metric_name",
    "check_metrics",
    "check_model_name",
    "check_tags",
    "check_text",
    "check_version_string",
    "check_whole_number",
    "is_reserved_ref_word",
    "metric_value",
    "nfc",
    "printable",
    "short_repr",
    "text_problem",
]

# Character limits, each the size of the column the value is stored in.
MAX_MODEL_NAME = 200
MAX_VERSION = 64
MAX_ALIAS = 64
MAX_RECIPE = 255
MAX_BASE_MODEL = 512
MAX_TEXT = 512
MAX_METRIC_NAME = 255
MAX_TAG = 100
MAX_STORAGE_BACKEND = 64
MAX_STORAGE_PATH = 2048
MAX_ACTOR = 255
MAX_LONG_TEXT = 10_000
"""Descriptions and reasons (unbounded TEXT columns, bounded here all the same)."""

MAX_ID = 2**63 - 1
"""Ids are 64-bit signed integers on every database."""
MAX_COUNT = 2**62
"""Limits, offsets and page sizes (a page asks the database for one row more)."""
MAX_DEPTH = 2**31 - 1
"""Lineage ``max_depth``: edges are counted in a 32-bit integer."""

# A model name may hold a Hub-style namespace ("org/model"), never an empty or ".." segment.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# C0 and C1 controls, DEL, the line/paragraph separators and the bidirectional overrides
# and isolates (which make a terminal show text in another order than it is stored).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same, less tab, line feed and carriage return: allowed in descriptions and reasons.
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

RESERVED_REF_WORDS = frozenset({*(s.value for s in Stage), "development", "latest"})

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxdict = _short.maxtuple = _short.maxset = 6
_short.maxlevel = 3


def short_repr(value: object) -> str:
    """``repr(value)`` cut to about 80 characters, for messages about arbitrary input.

    A shared structure (a YAML alias bomb) can have a repr of gigabytes: never ``!r`` it.
    """
    return _short.repr(value)


def printable(text: str, *, limit: int = 64) -> str:
    """``text`` fit for a message or a field name: cut to ``limit`` characters, and any
    lone surrogate or control character escaped (a message must always be printable)."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    if text_problem(cut) is None:
        return cut
    return "".join(ch if text_problem(ch) is None else ascii(ch)[1:-1] for ch in cut)


def is_reserved_ref_word(word: str) -> bool:
    """Is ``word`` (any case) a stage name, ``development`` or ``latest``?"""
    return word.lower() in RESERVED_REF_WORDS


def text_problem(value: str, *, multiline: bool = False, controls: bool = True) -> str | None:
    """What is wrong with ``value`` as stored text, or None.

    Lone surrogates (no UTF-8 form, so no database stores them) are always refused, and
    control characters unless ``controls`` is False (tab, line feed and carriage return
    are allowed when ``multiline``).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate ({value[exc.start]!a}) at position {exc.start}"
    if not controls:
        return None
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    if found:
        return f"holds the control character {found.group()!a} at position {found.start()}"
    return None


def nfc(value: str) -> str:
    """``value`` in Unicode normal form C (a no-op, and fast, for text already in it)."""
    return value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)


def check_model_name(name: object, *, field: str = "model_name") -> str:
    """A model name: 1-200 characters of letters, digits, ``._-`` and ``/`` between parts."""
    if not isinstance(name, str) or not name:
        raise ValidationError.single(field, "a model name is required (a non-empty string)")
    if len(name) > MAX_MODEL_NAME:
        raise ValidationError.single(
            field, f"is {len(name)} characters long; the limit is {MAX_MODEL_NAME}"
        )
    if not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise ValidationError.single(
            field,
            f"{name!r} may use letters, digits, '.', '_', '-' and '/' between parts, "
            "must start with a letter or digit, and may not contain '..'",
        )
    return name


def check_version_string(version: object, *, field: str = "version") -> str:
    """A version string: 1-64 of letters, digits, ``._+-``; never a stage name or ``latest``."""
    if not isinstance(version, str) or not version:
        raise ValidationError.single(field, "must be a non-empty string, or omitted")
    if len(version) > MAX_VERSION:
        raise ValidationError.single(field, f"is longer than {MAX_VERSION} characters")
    if not _VERSION.fullmatch(version) or ".." in version:
        raise ValidationError.single(
            field,
            f"{version!r} may use letters, digits, '.', '_', '+' and '-' only "
            "(no '/', '..' or whitespace) and must start with a letter or digit",
        )
    if is_reserved_ref_word(version):
        raise ValidationError.single(
            field, f"{version!r} is reserved for refs (stage names and 'latest')"
        )
    return version


def check_alias_name(alias: object, *, field: str = "alias") -> str:
    """An alias: a letter then up to 63 of letters, digits, ``_.-``; not a stage or ``latest``."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise ValidationError.single(
            field,
            f"{short_repr(alias)} must match [A-Za-z][A-Za-z0-9_.-]{{0,63}}",
        )
    if is_reserved_ref_word(alias):
        raise ValidationError.single(
            field, f"{alias!r} is reserved (stage names, 'development' and 'latest')"
        )
    return alias


def check_text(value: object, *, field: str, limit: int = MAX_TEXT, normalize: bool = True) -> str:
    """A required one-line string such as a recipe or a base model, in NFC.

    Args:
        limit: the most characters allowed (after normalisation).
        normalize: False keeps the text as given (storage paths name files as they are).
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.single(field, "is required (a non-empty string)")
    problem = text_problem(value)
    if problem:
        raise ValidationError.single(field, problem)
    text = nfc(value) if normalize else value
    if len(text) > limit:
        raise ValidationError.single(field, f"is {len(text)} characters long; the limit is {limit}")
    return text


def check_long_text(value: object, *, field: str, limit: int = MAX_LONG_TEXT) -> str | None:
    """An optional free text (a description, a reason) in NFC; line breaks and tabs allowed."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError.single(field, "must be a string or None")
    problem = text_problem(value, multiline=True)
    if problem:
        raise ValidationError.single(field, problem)
    text = nfc(value)
    if len(text) > limit:
        raise ValidationError.single(field, f"is {len(text)} characters long; the limit is {limit}")
    return text


def check_metric_name(name: object, *, field: str = "metric") -> str:
    """A metric name: 1-255 characters without control characters, in NFC."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError.single(
            field, f"metric name {short_repr(name)} must be a non-empty string"
        )
    problem = text_problem(name)
    if problem:
        raise ValidationError.single(field, f"metric name {problem}")
    text = nfc(name)
    if len(text) > MAX_METRIC_NAME:
        raise ValidationError.single(
            field, f"metric name is {len(text)} characters long; the limit is {MAX_METRIC_NAME}"
        )
    return text


def check_metrics(metrics: object, *, field: str = "metrics") -> dict[str, float]:
    """Metric names to finite numbers; bools, NaN and infinities are refused."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ValidationError.single(field, "must be a mapping of metric name to number")
    errors: dict[str, list[str]] = {}
    out: dict[str, float] = {}
    for name, raw in metrics.items():
        try:
            checked = check_metric_name(name, field=field)
        except ValidationError as exc:
            errors.setdefault(field, []).extend(exc.errors[field])
            continue
        key = f"{field}.{checked}"
        if checked in out:
            errors.setdefault(key, []).append(
                "is given twice (two spellings of one name in Unicode NFC)"
            )
            continue
        number = metric_value(raw)
        if number is None:
            errors.setdefault(key, []).append(
                f"{short_repr(raw)} is not a finite number (booleans are not metrics)"
            )
            continue
        out[checked] = number
    if errors:
        raise ValidationError(errors)
    return out


def metric_value(value: object) -> float | None:
    """``value`` as a finite float, or None (bools, NaN, infinities, ints beyond a float)."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        # numpy scalars (np.float32(0.9)) are common metric values; numpy is never imported.
        if type(value).__module__ != "numpy" or not hasattr(value, "item"):
            return None
        value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range, such as 10**400
        return None
    return number if math.isfinite(number) else None


def check_tags(tags: object, *, field: str = "tags") -> list[str]:
    """Distinct, non-empty tags of at most 100 characters in NFC, order kept."""
    if tags is None:
        return []
    if isinstance(tags, str | Mapping) or not isinstance(tags, Iterable):
        raise ValidationError.single(field, "must be a list of strings")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ValidationError.single(field, f"tag {short_repr(tag)} must be a non-empty string")
        problem = text_problem(tag)
        if problem:
            raise ValidationError.single(field, f"tag {problem}")
        text = nfc(tag)
        if len(text) > MAX_TAG:
            raise ValidationError.single(
                field, f"tag {short_repr(text)} is longer than {MAX_TAG} characters"
            )
        if text not in out:
            out.append(text)
    return out


def check_whole_number(
    value: object, *, field: str, minimum: int = 0, maximum: int = MAX_COUNT
) -> int:
    """An int (not a bool) between ``minimum`` and ``maximum``, both included."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError.single(field, f"{short_repr(value)} must be a whole number")
    if not minimum <= value <= maximum:
        shown = str(value) if len(str(value)) <= 30 else f"a {len(str(value))}-digit number"
        raise ValidationError.single(
            field, f"{shown} is out of range: give a whole number from {minimum} to {maximum}"
        )
    return value


def check_id(value: object, *, field: str) -> int:
    """A record id: a whole number from 1 to 2**63 - 1."""
    return check_whole_number(value, field=field, minimum=1, maximum=MAX_ID)


def check_local_path(value: object, *, field: str) -> Path:
    """A path on this machine that the operating system can be handed.

    Lone surrogates from undecodable file-name bytes (``surrogateescape``) are fine; a NUL
    or a surrogate with no byte behind it is refused here rather than by ``os`` calls.
    """
    if not isinstance(value, str | os.PathLike):
        raise ValidationError.single(field, f"{short_repr(value)} is not a path")
    try:
        encoded = os.fsencode(value)
    except (UnicodeEncodeError, TypeError):
        raise ValidationError.single(
            field, f"{short_repr(os.fspath(value))} holds characters no file name can hold"
        ) from None
    if b"\0" in encoded:
        raise ValidationError.single(field, f"{short_repr(os.fspath(value))} holds a NUL byte")
    return Path(os.fsdecode(encoded))


def check_config_hash(value: object, *, field: str = "config_hash") -> str:
    """A config hash: 64 hex digits (either case), returned in lower case."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value.lower()):
        raise ValidationError.single(
            field, f"{short_repr(value)} is not a 64-digit SHA-256 hex string"
        )
    return value.lower()
