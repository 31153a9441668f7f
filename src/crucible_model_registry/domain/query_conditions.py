"""The condition tree a query filters by: leaf and combinator types; combine, walk, describe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.refs import VersionRef

__all__ = [
    "EVERYTHING",
    "OPERATORS",
    "AllOf",
    "AnyOf",
    "Condition",
    "FieldEquals",
    "HasTag",
    "LineageRelation",
    "MetadataEquals",
    "MetricCondition",
    "MetricOp",
    "Not",
    "RelatedTo",
    "StageIn",
    "TextField",
    "all_of",
    "any_of",
    "describe",
    "iter_leaves",
    "negate",
    "parts_of",
]

MetricOp = Literal["gt", "gte", "lt", "lte", "eq", "ne"]
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
class MetadataEquals:
    """The version's metadata holds the string ``value`` at ``path`` (a key per level)."""

    path: tuple[str, ...]
    value: str


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
    StageIn
    | FieldEquals
    | HasTag
    | MetadataEquals
    | MetricCondition
    | RelatedTo
    | AllOf
    | AnyOf
    | Not
)
EVERYTHING = AllOf(())


def all_of(left: Condition, right: Condition) -> Condition:
    """``left`` and ``right``, with nested conjunctions flattened."""
    parts = [*parts_of(left, AllOf), *parts_of(right, AllOf)]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def any_of(left: Condition, right: Condition) -> Condition:
    """``left`` or ``right``, with nested disjunctions flattened."""
    if EVERYTHING in (left, right):
        return EVERYTHING
    parts = [*parts_of(left, AnyOf), *parts_of(right, AnyOf)]
    return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))


def negate(condition: Condition) -> Condition:
    """Not ``condition``; a double negation gives the condition back."""
    return condition.part if isinstance(condition, Not) else Not(condition)


def parts_of(condition: Condition, kind: type[AllOf] | type[AnyOf]) -> tuple[Condition, ...]:
    """The parts of ``condition`` if it is a ``kind``, else ``condition`` alone."""
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
        case MetadataEquals(path, value):
            return f"metadata {'.'.join(path)} is {value!r}"
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
