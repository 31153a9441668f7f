"""Checked query conditions from outside input: single leaves, filter maps, metric text and JSON."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast, get_args

from crucible_model_registry.domain.enums import Stage, parse_enum
from crucible_model_registry.domain.lineage import check_max_depth
from crucible_model_registry.domain.query_conditions import (
    OPERATORS,
    AllOf,
    AnyOf,
    Condition,
    FieldEquals,
    HasTag,
    LineageRelation,
    MetadataEquals,
    MetricCondition,
    Not,
    RelatedTo,
    StageIn,
    TextField,
)
from crucible_model_registry.domain.refs import VersionRef, parse_ref
from crucible_model_registry.domain.rules import (
    MAX_BASE_MODEL,
    MAX_RECIPE,
    check_config_hash,
    check_metric_name,
    check_model_name,
    check_tags,
    check_text,
    short_repr,
)
from crucible_model_registry.errors import ValidationError

__all__ = [
    "FILTER_KEYS",
    "condition_from_json",
    "condition_to_json",
    "conditions_from_filters",
    "finite_number",
    "lineage_condition",
    "metadata_condition",
    "metric_condition",
    "parse_metric_condition",
    "stage_condition",
    "tag_condition",
    "text_condition",
]

FILTER_KEYS: tuple[str, ...] = (
    "stage",
    "recipe",
    "base_model",
    "model_name",
    "tag",
    "config_hash",
    "metric",
)


# --------------------------------------------------------------------------- checked leaves


def stage_condition(stages: object, *, field: str = "stage") -> StageIn:
    """Any of these stages: one stage (a ``Stage`` or its name) or a list of them."""
    if isinstance(stages, str | Stage):
        items: list[object] = [stages]
    elif isinstance(stages, Iterable) and not isinstance(stages, Mapping | bytes):
        items = list(stages)
    else:
        raise ValidationError.single(field, f"{stages!r} is not a stage or a list of stages")
    if not items:
        raise ValidationError.single(field, "give at least one stage")
    parsed = [parse_enum(Stage, item, field=field) for item in items]
    return StageIn(tuple(dict.fromkeys(parsed)))


def metric_condition(
    name: object, op: object, value: object, *, field: str = "metric"
) -> MetricCondition:
    """A checked metric comparison: ``name`` a metric name, ``op`` as in ``OPERATORS``.

    Raises:
        ValidationError: naming ``field.name``, ``field.op`` or ``field.value``.
    """
    errors: dict[str, list[str]] = {}
    try:
        name = check_metric_name(name, field=f"{field}.name")
    except ValidationError as exc:
        errors.update(exc.errors)
    parsed_op = OPERATORS.get(op.strip().lower()) if isinstance(op, str) else None
    if parsed_op is None:
        errors[f"{field}.op"] = [f"{op!r} is not one of {', '.join(OPERATORS)}"]
    number = finite_number(value)
    if number is None:
        errors[f"{field}.value"] = [f"{short_repr(value)} is not a finite number"]
    if errors:
        raise ValidationError(errors)
    assert isinstance(name, str)
    assert parsed_op is not None
    assert number is not None
    return MetricCondition(name, parsed_op, number)


def finite_number(value: object) -> float | None:
    """``value`` as a finite float; None if it is not a finite real number (or is a bool)."""
    # numbers.Real covers int, float, Fraction and numpy's float and int scalars.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range, such as 10**400
        return None
    return number if math.isfinite(number) else None


def text_condition(field: TextField, value: object) -> FieldEquals:
    """An equality on recipe, base model, model name or config hash, with its input rules."""
    if field == "model_name":
        return FieldEquals(field, check_model_name(value, field=field))
    if field == "config_hash":
        return FieldEquals(field, check_config_hash(value, field=field))
    limit = MAX_RECIPE if field == "recipe" else MAX_BASE_MODEL
    return FieldEquals(field, check_text(value, field=field, limit=limit))


_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:/@+ -]{1,100}")


def metadata_condition(path: object, value: object, *, field: str = "metadata") -> MetadataEquals:
    """The version's metadata holds the string ``value`` at ``path`` (a list of keys).

    Keys are 1-100 letters, digits, spaces or ``_ . : / @ + -``: they go into the
    databases' JSON paths, where other characters need quoting that differs by dialect.
    """
    if isinstance(path, str) or not isinstance(path, Sequence) or not 1 <= len(path) <= 8:
        raise ValidationError.single(field, "the path must be a list of 1 to 8 keys")
    for key in path:
        if not isinstance(key, str) or _METADATA_KEY.fullmatch(key) is None:
            raise ValidationError.single(
                field, f"{short_repr(key)} is not a metadata key this query can follow"
            )
    if not isinstance(value, str):
        raise ValidationError.single(field, f"{short_repr(value)} is not a string")
    return MetadataEquals(tuple(path), value)


def tag_condition(tag: object, *, field: str = "tag") -> HasTag:
    """The version or its model carries ``tag``."""
    if not isinstance(tag, str):
        raise ValidationError.single(field, f"{short_repr(tag)} is not a tag (a string)")
    return HasTag(check_tags([tag], field=field)[0])


def lineage_condition(relation: LineageRelation, ref: VersionRef, max_depth: object) -> RelatedTo:
    """Descendants or ancestors of ``ref`` up to ``max_depth`` edges away (None: any)."""
    return RelatedTo(relation, ref, check_max_depth(max_depth))


# --------------------------------------------------------------------------- filter maps


def conditions_from_filters(filters: Mapping[str, Any]) -> list[Condition]:
    """The conditions of a filter map (API.md §4), every bad key reported at once.

    Keys: ``stage`` (one or a list), ``recipe``, ``base_model``, ``model_name``, ``tag``,
    ``config_hash``, ``metric`` (a ``(name, op, value)`` triple or a list of them), and
    ``min_<metric>`` / ``max_<metric>`` (inclusive bounds) for any metric name.

    Raises:
        ValidationError: each offending key (unknown key, bad value) maps to its problem.
    """
    if not isinstance(filters, Mapping):
        raise ValidationError.single("filters", "must be a mapping of filter key to value")
    errors: dict[str, list[str]] = {}
    out: list[Condition] = []
    for key, value in filters.items():
        try:
            out.extend(_filter_conditions(key, value))
        except ValidationError as exc:
            for field, messages in exc.errors.items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return out


def _filter_conditions(key: object, value: object) -> list[Condition]:
    if not isinstance(key, str):
        raise ValidationError.single("filters", f"filter key {key!r} is not a string")
    if key == "stage":
        return [stage_condition(value)]
    if key in ("recipe", "base_model", "model_name", "config_hash"):
        return [text_condition(cast(TextField, key), value)]
    if key == "tag":
        return [tag_condition(value)]
    if key == "metric":
        return list(_metric_triples(value))
    for prefix, op in (("min_", "gte"), ("max_", "lte")):
        if key.startswith(prefix) and len(key) > len(prefix):
            try:
                return [metric_condition(key[len(prefix) :], op, value, field=key)]
            except ValidationError as exc:
                # The key itself is the offending part: min_accuracy, not min_accuracy.value.
                messages = [m for found in exc.errors.values() for m in found]
                raise ValidationError({key: messages}) from None
    raise ValidationError.single(
        key,
        f"unknown filter key {key!r}; use {', '.join(FILTER_KEYS)}, min_<metric> or max_<metric>",
    )


def _metric_triples(value: object) -> Iterable[MetricCondition]:
    if _is_triple(value):
        name, op, number = cast(Sequence[object], value)
        yield metric_condition(name, op, number)
        return
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence) or not value:
        raise ValidationError.single(
            "metric", f"{value!r} is not a (name, op, value) triple or a list of them"
        )
    for i, item in enumerate(value):
        if not _is_triple(item):
            raise ValidationError.single(f"metric[{i}]", f"{item!r} is not a (name, op, value)")
        name, op, number = cast(Sequence[object], item)
        yield metric_condition(name, op, number, field=f"metric[{i}]")


def _is_triple(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and len(value) == 3
        and isinstance(value[0], str)
    )


_METRIC_TEXT = re.compile(
    r"\s*(?P<name>[^<>=!\s][^<>=!]*?)\s*(?P<op>>=|<=|==|!=|=|>|<)\s*(?P<value>[^<>=!]+?)\s*"
)
_METRIC_WORDS = re.compile(r"\s*(?P<name>.+?)\s+(?P<op>gte|gt|lte|lt|eq|ne)\s+(?P<value>\S+)\s*")


def parse_metric_condition(text: str) -> MetricCondition:
    """A metric condition written as text, as on the command line.

    ``accuracy>=0.9``, ``loss < 0.5``, ``bleu=30`` (``=`` means ``==``) or
    ``accuracy gte 0.9``; the metric name is everything before the first operator.

    Raises:
        ValidationError: on field ``metric`` when the text is not such a condition.
    """
    if not isinstance(text, str):
        raise ValidationError.single("metric", f"{text!r} is not a string")
    found = _METRIC_TEXT.fullmatch(text) or _METRIC_WORDS.fullmatch(text)
    if found is None:
        raise ValidationError.single(
            "metric", f"{text!r} is not a condition such as 'accuracy>=0.9' or 'loss<0.5'"
        )
    op = "eq" if found["op"] == "=" else found["op"]
    try:
        number: object = float(found["value"])
    except ValueError:
        number = found["value"]
    return metric_condition(found["name"], op, number)


# --------------------------------------------------------------------------- JSON forms


def condition_to_json(condition: Condition) -> dict[str, Any]:
    """A condition as JSON-compatible data: the ``where`` of :meth:`QuerySpec.to_json`."""
    match condition:
        case StageIn(stages):
            return {"stage": [s.value for s in stages]}
        case FieldEquals(field, value):
            return {field: value}
        case HasTag(tag):
            return {"tag": tag}
        case MetadataEquals(path, value):
            return {"metadata": [list(path), value]}
        case MetricCondition(name, op, value):
            return {"metric": [name, op, value]}
        case RelatedTo(relation, ref, max_depth):
            return {relation: str(ref), "max_depth": max_depth}
        case AllOf(parts):
            return {"all": [condition_to_json(p) for p in parts]}
        case AnyOf(parts):
            return {"any": [condition_to_json(p) for p in parts]}
        case Not(part):
            return {"not": condition_to_json(part)}
    raise AssertionError(condition)  # pragma: no cover - the match is exhaustive


def condition_from_json(data: object, path: str) -> Condition:
    """Read back what :func:`condition_to_json` wrote; errors name ``path`` or a part of it."""
    if not isinstance(data, Mapping) or not data:
        raise ValidationError.single(path, f"{data!r} is not a condition object")
    keys = set(data)
    for relation in get_args(LineageRelation):
        if relation in keys and keys <= {relation, "max_depth"}:
            ref = parse_ref(data[relation], field=path)
            return lineage_condition(relation, ref, data.get("max_depth"))
    if len(keys) != 1:
        raise ValidationError.single(path, f"expected one key, got {sorted(keys)}")
    (key,) = keys
    value = data[key]
    if key in ("all", "any"):
        if not isinstance(value, list):
            raise ValidationError.single(f"{path}.{key}", "must be a list")
        parts = tuple(condition_from_json(p, f"{path}.{key}[{i}]") for i, p in enumerate(value))
        return AllOf(parts) if key == "all" else AnyOf(parts)
    if key == "not":
        return Not(condition_from_json(value, f"{path}.not"))
    if key == "metadata":
        if not isinstance(value, list) or len(value) != 2:
            raise ValidationError.single(f"{path}.metadata", "must be [path, value]")
        return metadata_condition(value[0], value[1], field=f"{path}.metadata")
    if key == "metric":
        if not _is_triple(value):
            raise ValidationError.single(f"{path}.metric", "must be [name, op, value]")
        name, op, number = value
        return metric_condition(name, op, number, field=f"{path}.metric")
    if key in FILTER_KEYS:
        (condition,) = _filter_conditions(key, value)
        return condition
    raise ValidationError.single(path, f"unknown condition {key!r}")
