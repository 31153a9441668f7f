"""The immutable spec a Query builds (conditions, sort keys, limit, offset) and page cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol, cast

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.query_conditions import (
    EVERYTHING,
    AllOf,
    Condition,
    RelatedTo,
    all_of,
    iter_leaves,
    parts_of,
)
from crucible_model_registry.domain.query_filters import (
    condition_from_json,
    condition_to_json,
    conditions_from_filters,
    finite_number,
    metric_condition,
)
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.rules import (
    MAX_COUNT,
    MAX_ID,
    MAX_MODEL_NAME,
    check_whole_number,
    short_repr,
    text_problem,
)
from crucible_model_registry.errors import ValidationError

__all__ = [
    "ORDER_FIELDS",
    "STAGE_ORDER",
    "Direction",
    "OrderField",
    "OrderKey",
    "Page",
    "QuerySpec",
    "SupportsQuerySpec",
    "check_count",
    "decode_cursor",
    "encode_cursor",
    "order_key",
    "order_signature",
    "spec_from_filters",
    "spec_of",
]

Direction = Literal["asc", "desc"]
OrderField = Literal["created_at", "updated_at", "version", "model_name", "stage", "id", "metric"]

ORDER_FIELDS: tuple[str, ...] = ("created_at", "updated_at", "version", "model_name", "stage", "id")
# Sorting by stage follows a version's life, not the alphabet.
STAGE_ORDER: tuple[Stage, ...] = (Stage.EXPERIMENT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)


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
        return parts_of(self.where, AllOf)

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
            "where": condition_to_json(self.where),
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
            where=condition_from_json(data.get("where", {"all": []}), "query.where"),
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


# --------------------------------------------------------------------------- checked order keys


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
        raise ValidationError.single(field, f"{short_repr(value)} must be a whole number >= 0")
    return check_whole_number(value, field=field, maximum=MAX_COUNT)


# --------------------------------------------------------------------------- filter maps


def spec_from_filters(filters: Mapping[str, Any]) -> QuerySpec:
    """A spec whose conditions are a filter map's, all combined with AND."""
    conditions = conditions_from_filters(filters)
    return QuerySpec(where=AllOf(tuple(conditions)) if len(conditions) != 1 else conditions[0])


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
            ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID
            return value if ok else _BAD
        case "version" | "model_name":
            if not isinstance(value, str) or len(value) > MAX_MODEL_NAME:
                return _BAD
            return _BAD if text_problem(value) else value
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
            number = finite_number(value)
            return _BAD if number is None else number
    return _BAD  # pragma: no cover - every field is matched above
