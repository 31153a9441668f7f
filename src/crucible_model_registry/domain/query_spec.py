"""The immutable filters, ordering and limits that a Query builds, and the rules they obey.

A :class:`QuerySpec` is plain data: a tree of conditions (leaves such as
:class:`MetricCondition`, combined by :class:`AllOf`, :class:`AnyOf` and :class:`Not`), the
sort keys, a limit and an offset. Nothing here touches a database; ``store/queries.py``
turns a spec into SQL, and the governance code stores a spec's JSON form as a policy gate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias, cast, get_args

from crucible_model_registry.domain.enums import Stage, parse_enum
from crucible_model_registry.domain.lineage import check_max_depth
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.refs import VersionRef, parse_ref
from crucible_model_registry.domain.rules import (
    MAX_METRIC_NAME,
    check_model_name,
    check_tags,
    check_text,
)
from crucible_model_registry.errors import ValidationError

__all__ = [
    "EVERYTHING",
    "FILTER_KEYS",
    "OPERATORS",
    "ORDER_FIELDS",
    "STAGE_ORDER",
    "AllOf",
    "AnyOf",
    "Condition",
    "Direction",
    "FieldEquals",
    "HasTag",
    "LineageRelation",
    "MetricCondition",
    "MetricOp",
    "Not",
    "OrderField",
    "OrderKey",
    "Page",
    "QuerySpec",
    "RelatedTo",
    "StageIn",
    "SupportsQuerySpec",
    "TextField",
    "all_of",
    "any_of",
    "check_count",
    "conditions_from_filters",
    "decode_cursor",
    "describe",
    "encode_cursor",
    "iter_leaves",
    "lineage_condition",
    "metric_condition",
    "negate",
    "order_key",
    "order_signature",
    "parse_metric_condition",
    "spec_from_filters",
    "spec_of",
    "stage_condition",
    "tag_condition",
    "text_condition",
]

MetricOp = Literal["gt", "gte", "lt", "lte", "eq", "ne"]
Direction = Literal["asc", "desc"]
OrderField = Literal["created_at", "updated_at", "version", "model_name", "stage", "id", "metric"]
TextField = Literal["recipe", "base_model", "model_name", "config_hash"]
LineageRelation = Literal["descendant_of", "ancestor_of"]

_SYMBOL: Mapping[MetricOp, str] = {
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "eq": "==",
    "ne": "!=",
}
# Each operator by its name or its symbol.
OPERATORS: Mapping[str, MetricOp] = {
    spelling: op for op, symbol in _SYMBOL.items() for spelling in (op, symbol)
}
ORDER_FIELDS: tuple[str, ...] = ("created_at", "updated_at", "version", "model_name", "stage", "id")
FILTER_KEYS: tuple[str, ...] = (
    "stage",
    "recipe",
    "base_model",
    "model_name",
    "tag",
    "config_hash",
    "metric",
)
# Sorting by stage follows a version's life, not the alphabet.
STAGE_ORDER: tuple[Stage, ...] = (Stage.EXPERIMENT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class StageIn:
    """The version is in one of these stages."""

    stages: tuple[Stage, ...]


@dataclass(frozen=True, slots=True)
class FieldEquals:
    """The version's recipe, base model, model name or config hash equals ``value``."""

    field: TextField
    value: str


@dataclass(frozen=True, slots=True)
class HasTag:
    """The version, or its model, carries this tag."""

    tag: str


@dataclass(frozen=True, slots=True)
class MetricCondition:
    """The version has metric ``name`` and its value compares to ``value`` by ``op``."""

    name: str
    op: MetricOp
    value: float

    def holds_for(self, actual: float | None) -> bool:
        """Does a metric value (None: the version lacks it) satisfy this condition?"""
        if actual is None:
            return False
        match self.op:
            case "gt":
                return actual > self.value
            case "gte":
                return actual >= self.value
            case "lt":
                return actual < self.value
            case "lte":
                return actual <= self.value
            case "eq":
                return actual == self.value
            case "ne":
                return actual != self.value


@dataclass(frozen=True, slots=True)
class RelatedTo:
    """The version descends from (or is an ancestor of) ``ref``, ``ref`` itself excluded.

    ``max_depth`` None means any number of lineage edges away, else at most that many.
    """

    relation: LineageRelation
    ref: VersionRef
    max_depth: int | None = None


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part holds; with no parts, every version matches."""

    parts: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part holds; with no parts, no version matches."""

    parts: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Not:
    """Exactly the versions that ``part`` does not match."""

    part: Condition


Condition: TypeAlias = (
    StageIn | FieldEquals | HasTag | MetricCondition | RelatedTo | AllOf | AnyOf | Not
)
EVERYTHING = AllOf(())


def all_of(left: Condition, right: Condition) -> Condition:
    """``left`` and ``right``, with nested conjunctions flattened."""
    parts = [*_parts(left, AllOf), *_parts(right, AllOf)]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def any_of(left: Condition, right: Condition) -> Condition:
    """``left`` or ``right``, with nested disjunctions flattened."""
    if EVERYTHING in (left, right):
        return EVERYTHING
    parts = [*_parts(left, AnyOf), *_parts(right, AnyOf)]
    return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))


def negate(condition: Condition) -> Condition:
    """Not ``condition``; a double negation gives the condition back."""
    return condition.part if isinstance(condition, Not) else Not(condition)


def _parts(condition: Condition, kind: type[AllOf] | type[AnyOf]) -> tuple[Condition, ...]:
    return condition.parts if isinstance(condition, kind) else (condition,)


def iter_leaves(condition: Condition) -> Iterable[Condition]:
    """Every leaf of a condition tree, depth first."""
    match condition:
        case AllOf(parts) | AnyOf(parts):
            for part in parts:
                yield from iter_leaves(part)
        case Not(part):
            yield from iter_leaves(part)
        case _:
            yield condition


def describe(condition: Condition) -> str:
    """The condition as a sentence fragment, e.g. ``accuracy >= 0.9``, for error messages."""
    match condition:
        case StageIn(stages):
            return "stage is " + " or ".join(s.value for s in stages)
        case FieldEquals(field, value):
            return f"{field} is {value!r}"
        case HasTag(tag):
            return f"tagged {tag!r}"
        case MetricCondition(name, op, value):
            shown = name if name.isidentifier() else repr(name)
            return f"{shown} {_SYMBOL[op]} {value!r}"
        case RelatedTo(relation, ref, max_depth):
            noun = "descendant" if relation == "descendant_of" else "ancestor"
            within = "" if max_depth is None else f" within {max_depth} generation(s)"
            return f"{noun} of {str(ref)!r}{within}"
        case AllOf(()):
            return "any version"
        case AnyOf(()):
            return "no version"
        case AllOf(parts):
            return " and ".join(_grouped(p) for p in parts)
        case AnyOf(parts):
            return " or ".join(_grouped(p) for p in parts)
        case Not(part):
            return f"not ({describe(part)})"
    raise AssertionError(condition)  # pragma: no cover - the match is exhaustive


def _grouped(condition: Condition) -> str:
    text = describe(condition)
    return f"({text})" if isinstance(condition, AllOf | AnyOf) and condition.parts else text


# --------------------------------------------------------------------------- ordering and spec


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One sort key: a version field, or a metric (``field="metric"`` and its ``metric`` name)."""

    field: OrderField
    direction: Direction = "asc"
    metric: str | None = None

    def describe(self) -> str:
        """``created_at desc`` or ``metric 'accuracy' desc``."""
        name = f"metric {self.metric!r}" if self.field == "metric" else self.field
        return f"{name} {self.direction}"


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """What a query asks for: conditions, sort keys, limit and offset.

    Default order: ``id`` ascending. Ties of the sort keys are broken by ``id`` in the
    direction of the last key, so that every ordering is total (and pageable).
    """

    where: Condition = EVERYTHING
    order: tuple[OrderKey, ...] = ()
    limit: int | None = None
    offset: int = 0

    def and_where(self, condition: Condition) -> QuerySpec:
        """This spec with one more condition that must also hold."""
        return replace(self, where=all_of(self.where, condition))

    def conjuncts(self) -> tuple[Condition, ...]:
        """The conditions that must all hold: the top-level parts of ``where``.

        A promotion gate evaluates these one by one to list every unmet condition.
        """
        return _parts(self.where, AllOf)

    def sort_keys(self) -> tuple[OrderKey, ...]:
        """The sort keys with the ``id`` tie-breaker appended (unless ``id`` is one already)."""
        keys: list[OrderKey] = []
        for key in self.order:
            keys.append(key)
            if key.field == "id":
                return tuple(keys)
        last: Direction = keys[-1].direction if keys else "asc"
        return (*keys, OrderKey("id", last))

    def has_lineage(self) -> bool:
        """Does any condition need the lineage graph (``where_descendant_of`` and the like)?"""
        return any(isinstance(leaf, RelatedTo) for leaf in iter_leaves(self.where))

    def to_json(self) -> dict[str, Any]:
        """This spec as JSON-compatible data (a dict); :meth:`from_json` reads it back."""
        return {
            "version": 1,
            "where": _condition_to_json(self.where),
            "order": [
                {"field": k.field, "direction": k.direction}
                | ({"metric": k.metric} if k.field == "metric" else {})
                for k in self.order
            ],
            "limit": self.limit,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> QuerySpec:
        """Read back what :meth:`to_json` wrote (a dict, or that dict as a JSON string).

        Raises:
            ValidationError: the data is not a spec (the field names the offending part).
        """
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise ValidationError.single("query", f"not JSON: {exc}") from None
        if not isinstance(data, Mapping) or data.get("version") != 1:
            raise ValidationError.single("query", "expected an object with version 1")
        unknown = set(data) - {"version", "where", "order", "limit", "offset"}
        if unknown:
            raise ValidationError.single("query", f"unknown key(s) {sorted(unknown)}")
        order = data.get("order", [])
        if not isinstance(order, list):
            raise ValidationError.single("query.order", "must be a list")
        keys = []
        for i, item in enumerate(order):
            if not isinstance(item, Mapping) or set(item) - {"field", "direction", "metric"}:
                raise ValidationError.single(f"query.order[{i}]", "must be {field, direction}")
            if item.get("field") == "metric":
                keys.append(order_key("metric", item.get("direction"), metric=item.get("metric")))
            else:
                keys.append(order_key(item.get("field"), item.get("direction")))
        return cls(
            where=_condition_from_json(data.get("where", {"all": []}), "query.where"),
            order=tuple(keys),
            limit=check_count(data.get("limit"), field="query.limit", optional=True),
            offset=check_count(data.get("offset", 0), field="query.offset") or 0,
        )


class SupportsQuerySpec(Protocol):
    """Anything that carries a spec, such as the public ``Query`` builder."""

    @property
    def spec(self) -> QuerySpec: ...


def spec_of(filters: object) -> QuerySpec:
    """A spec from a filter map, a spec, anything with a ``spec`` (a Query), or None (all).

    Raises:
        ValidationError: for anything else, or a bad filter map.
    """
    if filters is None:
        return QuerySpec()
    if isinstance(filters, QuerySpec):
        return filters
    if isinstance(filters, Mapping):
        return spec_from_filters(filters)
    spec = getattr(filters, "spec", None)
    if isinstance(spec, QuerySpec):
        return spec
    raise ValidationError.single(
        "filters", f"expected a mapping of filters or a Query, got {type(filters).__name__}"
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a keyset-paginated query.

    Attributes:
        items: the versions on this page, in the query's order.
        next_cursor: pass it to ``page()`` for the next page; None on the last page.
    """

    items: list[ModelVersion]
    next_cursor: str | None


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
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_METRIC_NAME
        or _CONTROL.search(name)
    ):
        errors[f"{field}.name"] = [
            f"{name!r} is not a metric name (1-{MAX_METRIC_NAME} characters, no control characters)"
        ]
    parsed_op = OPERATORS.get(op.strip().lower()) if isinstance(op, str) else None
    if parsed_op is None:
        errors[f"{field}.op"] = [f"{op!r} is not one of {', '.join(OPERATORS)}"]
    number = _finite_number(value)
    if number is None:
        errors[f"{field}.value"] = [f"{value!r} is not a finite number"]
    if errors:
        raise ValidationError(errors)
    assert isinstance(name, str)
    assert parsed_op is not None
    assert number is not None
    return MetricCondition(name, parsed_op, number)


def _finite_number(value: object) -> float | None:
    # numbers.Real covers int, float, Fraction and numpy's float and int scalars.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def text_condition(field: TextField, value: object) -> FieldEquals:
    """An equality on recipe, base model, model name or config hash, with its input rules."""
    if field == "model_name":
        return FieldEquals(field, check_model_name(value, field=field))
    if field == "config_hash":
        if not isinstance(value, str) or not _HEX64.fullmatch(value.lower()):
            raise ValidationError.single(field, f"{value!r} is not a 64-digit SHA-256 hex string")
        return FieldEquals(field, value.lower())
    return FieldEquals(field, check_text(value, field=field))


def tag_condition(tag: object, *, field: str = "tag") -> HasTag:
    """The version or its model carries ``tag``."""
    if not isinstance(tag, str):
        raise ValidationError.single(field, f"{tag!r} is not a tag (a string)")
    return HasTag(check_tags([tag], field=field)[0])


def lineage_condition(relation: LineageRelation, ref: VersionRef, max_depth: object) -> RelatedTo:
    """Descendants or ancestors of ``ref`` up to ``max_depth`` edges away (None: any)."""
    return RelatedTo(relation, ref, check_max_depth(max_depth))


def order_key(field: object, direction: object = "asc", *, metric: object = None) -> OrderKey:
    """A checked sort key: one of ``ORDER_FIELDS``, or ``"metric"`` with a metric name.

    Raises:
        ValidationError: naming ``order_by`` (unknown field) or ``direction``.
    """
    if isinstance(direction, str) and direction.strip().lower() in ("asc", "desc"):
        checked: Direction = cast(Direction, direction.strip().lower())
    else:
        raise ValidationError.single("direction", f"{direction!r} is not 'asc' or 'desc'")
    if field == "metric":
        name = metric_condition(metric, "eq", 0.0, field="order_by_metric").name
        return OrderKey("metric", checked, name)
    if field not in ORDER_FIELDS:
        raise ValidationError.single(
            "order_by", f"{field!r} is not one of {', '.join(ORDER_FIELDS)}"
        )
    return OrderKey(cast(OrderField, field), checked)


def check_count(value: object, *, field: str, optional: bool = False) -> int | None:
    """A whole number >= 0 (a limit, an offset, a depth); None only if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError.single(field, f"{value!r} must be a whole number >= 0")
    return value


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


def spec_from_filters(filters: Mapping[str, Any]) -> QuerySpec:
    """A spec whose conditions are a filter map's, all combined with AND."""
    conditions = conditions_from_filters(filters)
    return QuerySpec(where=AllOf(tuple(conditions)) if len(conditions) != 1 else conditions[0])


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


def _condition_to_json(condition: Condition) -> dict[str, Any]:
    match condition:
        case StageIn(stages):
            return {"stage": [s.value for s in stages]}
        case FieldEquals(field, value):
            return {field: value}
        case HasTag(tag):
            return {"tag": tag}
        case MetricCondition(name, op, value):
            return {"metric": [name, op, value]}
        case RelatedTo(relation, ref, max_depth):
            return {relation: str(ref), "max_depth": max_depth}
        case AllOf(parts):
            return {"all": [_condition_to_json(p) for p in parts]}
        case AnyOf(parts):
            return {"any": [_condition_to_json(p) for p in parts]}
        case Not(part):
            return {"not": _condition_to_json(part)}
    raise AssertionError(condition)  # pragma: no cover - the match is exhaustive


def _condition_from_json(data: object, path: str) -> Condition:
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
        parts = tuple(_condition_from_json(p, f"{path}.{key}[{i}]") for i, p in enumerate(value))
        return AllOf(parts) if key == "all" else AnyOf(parts)
    if key == "not":
        return Not(_condition_from_json(value, f"{path}.not"))
    if key == "metric":
        if not _is_triple(value):
            raise ValidationError.single(f"{path}.metric", "must be [name, op, value]")
        name, op, number = value
        return metric_condition(name, op, number, field=f"{path}.metric")
    if key in FILTER_KEYS:
        (condition,) = _filter_conditions(key, value)
        return condition
    raise ValidationError.single(path, f"unknown condition {key!r}")


# --------------------------------------------------------------------------- page cursors


def order_signature(keys: Sequence[OrderKey]) -> str:
    """A short digest of the sort keys, so a cursor cannot be used with another ordering."""
    text = "|".join(f"{k.field}:{k.direction}:{k.metric or ''}" for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(keys: Sequence[OrderKey], values: Sequence[object]) -> str:
    """An opaque cursor holding the sort-key values of the last version on a page.

    ``values`` are the SQL sort values: ints (ids, stage ranks), strings, aware datetimes,
    and floats or None (a metric the version lacks).
    """
    encoded = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps({"o": order_signature(keys), "k": encoded}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(keys: Sequence[OrderKey], cursor: object) -> tuple[object, ...]:
    """The sort-key values inside a cursor from :func:`encode_cursor` for the same keys.

    Raises:
        ValidationError: on field ``cursor`` if it is malformed or from another ordering.
    """
    malformed = ValidationError.single("cursor", "malformed cursor; pass next_cursor unchanged")
    if not isinstance(cursor, str) or not cursor or len(cursor) > 8192:
        raise malformed
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise malformed from None
    if not isinstance(payload, dict) or set(payload) != {"o", "k"}:
        raise malformed
    if payload["o"] != order_signature(keys):
        raise ValidationError.single(
            "cursor", "this cursor belongs to a query with a different ordering"
        )
    values = payload["k"]
    if not isinstance(values, list) or len(values) != len(keys):
        raise malformed
    out = []
    for key, value in zip(keys, values, strict=True):
        checked = _cursor_value(key, value)
        if checked is _BAD:
            raise malformed
        out.append(checked)
    return tuple(out)


_BAD = object()


def _cursor_value(key: OrderKey, value: object) -> object:
    match key.field:
        case "id" | "stage":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return value if ok else _BAD
        case "version" | "model_name":
            return value if isinstance(value, str) else _BAD
        case "created_at" | "updated_at":
            if not isinstance(value, str):
                return _BAD
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return _BAD
            return moment if moment.tzinfo is not None else _BAD
        case "metric":
            if value is None:
                return None
            number = _finite_number(value)
            return _BAD if number is None else number
    return _BAD  # pragma: no cover - every field is matched above
