"""Query: the immutable public builder over QuerySpec, run by a Registry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from crucible_model_registry import _hooks
from crucible_model_registry.domain.enums import Stage
from crucible_model_registry.domain.query_conditions import MetricOp, all_of, any_of, negate
from crucible_model_registry.domain.query_filters import (
    lineage_condition,
    metadata_condition,
    metric_condition,
    stage_condition,
    tag_condition,
    text_condition,
)
from crucible_model_registry.domain.query_spec import (
    Direction,
    Page,
    QuerySpec,
    check_count,
    order_key,
    spec_from_filters,
)
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.specs import ref_of
from crucible_model_registry.errors import ValidationError

if TYPE_CHECKING:
    from crucible_model_registry.backends.base import MetadataBackend

__all__ = ["Page", "Query", "QueryRunner"]


class QueryRunner(Protocol):
    """What runs a query: a ``Registry`` (typed structurally, as the two are siblings).

    The query goes to the registry's metadata backend, local or remote alike.
    """

    @property
    def backend(self) -> MetadataBackend: ...

    def _scoped_spec(self, spec: QuerySpec) -> QuerySpec:
        """The spec limited to what the acting principal may read (unchanged without one)."""
        ...


class Query:
    """An immutable query over versions: every method returns a new Query.

    ``Query()`` runs on the default registry when executed; ``Query(registry)`` or
    ``query.using(registry)`` on a given one. Conditions combine with AND; queries compose
    with ``|`` (either), ``&`` (both) and ``~`` (exactly the versions not matched). The
    composed query keeps the left operand's ordering, limit and offset.

    Example::

        cmr.Query().where_stage("production").where_metric("accuracy", ">=", 0.9)
                   .order_by_metric("accuracy", "desc").limit(10).execute()
    """

    __slots__ = ("_registry", "_spec")

    def __init__(self, registry: QueryRunner | None = None, *, spec: QuerySpec | None = None):
        self._registry = registry
        self._spec = spec if spec is not None else QuerySpec()

    @classmethod
    def from_filters(cls, filters: Mapping[str, Any], registry: QueryRunner | None = None) -> Query:
        """A query with the conditions of a filter map (the keys of ``cmr.query``).

        Raises:
            ValidationError: each unknown key or bad value is named.
        """
        return cls(registry, spec=spec_from_filters(filters))

    @property
    def spec(self) -> QuerySpec:
        """The plain value this query has built."""
        return self._spec

    def using(self, registry: QueryRunner) -> Query:
        """This query, run on ``registry``."""
        return Query(registry, spec=self._spec)

    def _with(self, spec: QuerySpec) -> Query:
        return Query(self._registry, spec=spec)

    # ------------------------------------------------------------------ conditions

    def where_stage(self, stage: Stage | str | Iterable[Stage | str]) -> Query:
        """Versions in this stage, or in any of a list of stages."""
        return self._with(self._spec.and_where(stage_condition(stage)))

    def where_metric(self, name: str, op: MetricOp | str, value: float) -> Query:
        """Versions whose metric ``name`` compares to ``value`` (lacking it never matches).

        Args:
            op: ``gt gte lt lte eq ne`` or ``> >= < <= == !=``.

        Raises:
            ValidationError: unknown operator, non-numeric value or bad metric name.
        """
        return self._with(self._spec.and_where(metric_condition(name, op, value)))

    def where_recipe(self, recipe: str) -> Query:
        """Versions trained with this recipe."""
        return self._with(self._spec.and_where(text_condition("recipe", recipe)))

    def where_base_model(self, base_model: str) -> Query:
        """Versions trained from this base model."""
        return self._with(self._spec.and_where(text_condition("base_model", base_model)))

    def where_model_name(self, model_name: str) -> Query:
        """Versions of this model."""
        return self._with(self._spec.and_where(text_condition("model_name", model_name)))

    def where_tag(self, tag: str) -> Query:
        """Versions tagged ``tag``, or whose model is."""
        return self._with(self._spec.and_where(tag_condition(tag)))

    def where_metadata(self, path: Sequence[str], value: str) -> Query:
        """Versions whose metadata holds the string ``value`` at ``path``.

        ``Query().where_metadata(["mlflow", "tags", "team"], "vision")`` finds the versions
        an MLflow client tagged ``team=vision``. Keys are 1-100 letters, digits, spaces or
        ``_ . : / @ + -``.
        """
        return self._with(self._spec.and_where(metadata_condition(path, value)))

    def where_config_hash(self, config_hash: str) -> Query:
        """Versions whose training config has this hash."""
        return self._with(self._spec.and_where(text_condition("config_hash", config_hash)))

    def where_descendant_of(self, version: object, max_depth: int | None = None) -> Query:
        """Versions made from ``version`` (a record, id or ref), itself excluded.

        Args:
            max_depth: at most this many lineage edges away (≥ 1); None for any.
        """
        ref = ref_of(version, field="where_descendant_of")
        return self._with(self._spec.and_where(lineage_condition("descendant_of", ref, max_depth)))

    def where_ancestor_of(self, version: object, max_depth: int | None = None) -> Query:
        """Versions ``version`` (a record, id or ref) was made from, itself excluded.

        Args:
            max_depth: at most this many lineage edges away (≥ 1); None for any.
        """
        ref = ref_of(version, field="where_ancestor_of")
        return self._with(self._spec.and_where(lineage_condition("ancestor_of", ref, max_depth)))

    # ------------------------------------------------------------------ order and window

    def order_by(self, field: str, direction: Direction | str = "asc") -> Query:
        """Sort by ``created_at``, ``updated_at``, ``version``, ``model_name``, ``stage`` or ``id``.

        Each call adds a key after the earlier ones. Strings sort by code point, stages in
        life order (experiment, staging, production, archived); ties are broken by id in
        the direction of the last key.
        """
        key = order_key(field, direction)
        return self._with(replace(self._spec, order=(*self._spec.order, key)))

    def order_by_metric(self, name: str, direction: Direction | str = "asc") -> Query:
        """Sort by a metric's value; versions without that metric come last either way."""
        key = order_key("metric", direction, metric=name)
        return self._with(replace(self._spec, order=(*self._spec.order, key)))

    def limit(self, count: int | None) -> Query:
        """Return at most ``count`` versions (None: no limit)."""
        checked = check_count(count, field="limit", optional=True)
        return self._with(replace(self._spec, limit=checked))

    def offset(self, count: int) -> Query:
        """Skip the first ``count`` versions (prefer :meth:`page` for deep pages)."""
        checked = check_count(count, field="offset") or 0
        return self._with(replace(self._spec, offset=checked))

    # ------------------------------------------------------------------ composition

    def __and__(self, other: object) -> Query:
        if not isinstance(other, Query):
            return NotImplemented
        return self._composed(other, all_of(self._spec.where, other._spec.where))

    def __or__(self, other: object) -> Query:
        if not isinstance(other, Query):
            return NotImplemented
        return self._composed(other, any_of(self._spec.where, other._spec.where))

    def __invert__(self) -> Query:
        return self._with(replace(self._spec, where=negate(self._spec.where)))

    def _composed(self, other: Query, where: Any) -> Query:
        return Query(self._registry or other._registry, spec=replace(self._spec, where=where))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and other._spec == self._spec

    def __hash__(self) -> int:
        return hash(self._spec)

    def __repr__(self) -> str:
        return f"Query({self._spec!r})"

    # ------------------------------------------------------------------ running

    def _runner(self) -> QueryRunner:
        if self._registry is not None:
            return self._registry
        # Registry is a sibling: the package root lends the default registry's lookup.
        return cast("QueryRunner", _hooks.default_registry[0]())

    def _backend(self) -> MetadataBackend:
        return self._runner().backend

    def _run_spec(self) -> QuerySpec:
        # At a server, the models the token may not read are left out of every answer.
        return self._runner()._scoped_spec(self._spec)

    def execute(self) -> list[ModelVersion]:
        """The matching versions, in order, with their artifacts and model names.

        Raises:
            NotFoundError: a lineage predicate names a version that does not exist.
        """
        return self._backend().find_versions(self._run_spec())

    def count(self) -> int:
        """How many versions match (ordering, limit and offset are ignored)."""
        return self._backend().count_versions(self._run_spec())

    def first(self) -> ModelVersion | None:
        """The first matching version in order, or None."""
        return self._backend().first_version(self._run_spec())

    def page(self, size: int, cursor: str | None = None) -> Page:
        """One page of results by keyset: stays fast at any depth, ignores limit and offset.

        Args:
            size: at most this many versions (≥ 1).
            cursor: the ``next_cursor`` of the previous page; None for the first page.

        Raises:
            ValidationError: ``size`` below 1, or a malformed cursor or one from a query
                with a different ordering.
        """
        checked = check_count(size, field="size")
        if not checked:
            raise ValidationError.single("size", f"{size!r} must be at least 1")
        return self._backend().page_versions(self._run_spec(), size=checked, cursor=cursor)
