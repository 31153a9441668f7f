"""Checks on names, version strings, metrics and tags shared by every entry point."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.errors import ValidationError

__all__ = [
    "MAX_MODEL_NAME",
    "RESERVED_REF_WORDS",
    "check_alias_name",
    "check_metrics",
    "check_model_name",
    "check_tags",
    "check_text",
    "check_version_string",
    "is_reserved_ref_word",
]

MAX_MODEL_NAME = 200
MAX_VERSION = 64
MAX_TEXT = 512
MAX_METRIC_NAME = 255
MAX_TAG = 100

# A model name may hold a Hub-style namespace ("org/model"), never an empty or ".." segment.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

RESERVED_REF_WORDS = frozenset({*(s.value for s in Stage), "development", "latest"})


def is_reserved_ref_word(word: str) -> bool:
    """Is ``word`` (any case) a stage name, ``development`` or ``latest``?"""
    return word.lower() in RESERVED_REF_WORDS


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
            f"{alias!r} must match [A-Za-z][A-Za-z0-9_.-]{{0,63}}",
        )
    if is_reserved_ref_word(alias):
        raise ValidationError.single(
            field, f"{alias!r} is reserved (stage names, 'development' and 'latest')"
        )
    return alias


def check_text(value: object, *, field: str, required: bool = True, limit: int = MAX_TEXT) -> str:
    """A short required string such as a recipe or base model."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.single(field, "is required (a non-empty string)")
    if len(value) > limit:
        raise ValidationError.single(field, f"is longer than {limit} characters")
    if _CONTROL.search(value):
        raise ValidationError.single(field, "may not contain control characters")
    return value


def check_metrics(metrics: object, *, field: str = "metrics") -> dict[str, float]:
    """Metric names to finite numbers; bools, NaN and infinities are refused."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ValidationError.single(field, "must be a mapping of metric name to number")
    errors: dict[str, list[str]] = {}
    out: dict[str, float] = {}
    for name, raw in metrics.items():
        value = raw
        key = f"{field}.{name}"
        if not isinstance(name, str) or not name or len(name) > MAX_METRIC_NAME:
            errors.setdefault(field, []).append(
                f"metric name {name!r} must be a string of 1-{MAX_METRIC_NAME} characters"
            )
            continue
        if _CONTROL.search(name):
            errors.setdefault(key, []).append("metric names may not hold control characters")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            as_float = _numeric_scalar(value)
            if as_float is None:
                errors.setdefault(key, []).append(
                    f"{value!r} is not a number (booleans are not metrics)"
                )
                continue
            value = as_float
        if not math.isfinite(value):
            errors.setdefault(key, []).append(f"{value!r} is not finite")
            continue
        out[name] = float(value)
    if errors:
        raise ValidationError(errors)
    return out


def _numeric_scalar(value: object) -> float | None:
    # numpy scalars (np.float32(0.9)) are common metric values; numpy is never imported.
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        item = value.item()
        if isinstance(item, int | float) and not isinstance(item, bool):
            return float(item)
    return None


def check_tags(tags: object, *, field: str = "tags") -> list[str]:
    """Distinct, non-empty tags of at most 100 characters, order kept."""
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ValidationError.single(field, "must be a list of strings")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
            raise ValidationError.single(
                field, f"tag {tag!r} must be a non-empty string of at most {MAX_TAG} characters"
            )
        if _CONTROL.search(tag):
            raise ValidationError.single(field, f"tag {tag!r} holds control characters")
        if tag not in out:
            out.append(tag)
    return out
