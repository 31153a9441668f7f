"""QuerySpec -> SELECT with bound parameters only: results, counts, keyset pages, gate checks.

How a spec becomes SQL:

* Metric conditions that must hold (the top-level conjuncts) become inner joins on
  ``cmr_version_metrics`` filtered by ``(name, value)``, so a threshold is a range scan of
  the ``(name, value, version_id)`` index, and ordering by that metric walks the same
  index. Metric conditions under ``|`` or ``~`` become correlated ``EXISTS`` probes of the
  ``(version_id, name)`` primary key; a version lacking the metric fails them, so ``~``
  of them matches it.
* A tag is "on the version or on its model": ``EXISTS`` on either. A required tag in a
  limited query is read as two ordered branches instead (see ``_statement``), since an
  OR makes PostgreSQL hash every tagged id first.
* A model name is an ``IN`` over the unique model name; lineage predicates are
  ``WITH RECURSIVE`` walks (one CTE per predicate) in the same statement.
* Versions lacking the metric the order starts with come last in both directions: the
  limited queries read those with it in index order and then those without it
  (``_fetch_split``); the others left-join with ``NULLS LAST``. String keys sort by code
  point (``COLLATE "C"`` on PostgreSQL, ``BINARY`` on SQLite) so both databases agree.
* Pages are keyset pages: ``WHERE (keys) > (the last row's keys)``, never an OFFSET.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Row,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    tuple_,
    union,
)
from sqlalchemy.sql.elements import UnaryExpression

from crucible_model_registry.domain.query_conditions import (
    AllOf,
    AnyOf,
    Condition,
    FieldEquals,
    HasTag,
    MetadataEquals,
    MetricCondition,
    Not,
    RelatedTo,
    StageIn,
    describe,
    iter_leaves,
)
from crucible_model_registry.domain.query_spec import (
    STAGE_ORDER,
    OrderKey,
    Page,
    QuerySpec,
    decode_cursor,
    encode_cursor,
)
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.errors import NotFoundError
from crucible_model_registry.store._records import versions_from_rows
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import resolve_ref
from crucible_model_registry.store.tables import (
    EDGES,
    METRICS,
    MODEL_TAGS,
    MODELS,
    VERSION_TAGS,
    VERSIONS,
)

__all__ = [
    "count_versions",
    "find_versions",
    "matches",
    "page_versions",
    "select_statement",
    "judge_conjuncts",
    "unmet_conditions",
]

V = VERSIONS.c
M = MODELS.c
E = EDGES.c

_SORT_LABEL = "cmr_sort_{}"

# A row of the versions query and the values of its sort keys (for cursors).
_Sorted = tuple[Row[Any], tuple[object, ...]]


def find_versions(db: Database, spec: QuerySpec) -> list[ModelVersion]:
    """The versions a spec matches, in its order, honouring its limit and offset.

    Two round trips whatever the result size (up to ``IN_CHUNK`` versions per artifact
    batch), plus the lookups that resolve a lineage predicate's version reference, and
    one more when a limited result ordered by a metric reaches the versions lacking it.

    Raises:
        NotFoundError: a lineage predicate names a version that does not exist.
    """
    keys = spec.sort_keys()
    with db.read() as conn:
        roots = _resolve_roots(conn, spec)
        if spec.limit is not None and _missing_last(spec) is not None:
            found = _fetch_split(
                conn, spec, roots, keys, after=None, count=spec.offset + spec.limit
            )
            found = found[spec.offset :]
        else:
            plan = _Plan(conn, spec, roots, split_tag=spec.limit is not None)
            found = _fetch(conn, plan, keys, limit=spec.limit, offset=spec.offset)
        return versions_from_rows(conn, [row for row, _ in found])


def count_versions(db: Database, spec: QuerySpec) -> int:
    """How many versions a spec matches (its ordering, limit and offset are ignored).

    The count is exact and read in the caller's snapshot, so it costs one index entry per
    matching version: a broad filter backed by an index (``stage IN (staging,
    production)``, 250,000 of 1M versions) is already an index-only scan with no heap
    fetches, ~80 ns a match on an idle core (issue 21). Counting faster would need
    counters kept per (model, stage) on every registration, promotion and delete, a
    write on a hot row that registration's one-statement floor cannot afford.
    """
    with db.read() as conn:
        plan = _Plan(conn, spec, _resolve_roots(conn, spec))
        stmt = select(func.count()).select_from(plan.from_clause(models=False, order=()))
        return int(conn.execute(stmt.where(*plan.where)).scalar_one())


def page_versions(db: Database, spec: QuerySpec, *, size: int, cursor: str | None) -> Page:
    """One keyset page of ``size`` versions after ``cursor`` (the spec's limit/offset ignored).

    Raises:
        ValidationError: a malformed cursor, or one from a differently ordered query.
    """
    keys = spec.sort_keys()
    last = decode_cursor(keys, cursor) if cursor is not None else None
    with db.read() as conn:
        roots = _resolve_roots(conn, spec)
        if _missing_last(spec) is not None:
            found = _fetch_split(conn, spec, roots, keys, after=last, count=size + 1)
        else:
            plan = _Plan(conn, spec, roots, split_tag=True)
            found = _fetch(conn, plan, keys, after=last, limit=size + 1)
        items = versions_from_rows(conn, [row for row, _ in found[:size]])
    next_cursor = encode_cursor(keys, found[size - 1][1]) if len(found) > size else None
    return Page(items=items, next_cursor=next_cursor)


def select_statement(conn: Connection, spec: QuerySpec) -> Select[Any]:
    """One SELECT for the spec's versions in order (for ``EXPLAIN`` in benchmarks, say)."""
    plan = _Plan(conn, spec, _resolve_roots(conn, spec), split_tag=spec.limit is not None)
    return _statement(plan, spec.sort_keys(), after=None, limit=spec.limit, offset=spec.offset)


def matches(conn: Connection, spec: QuerySpec, version_id: int) -> bool:
    """Does the version match the spec's conditions, as of this transaction?

    For promotion gates: run it inside the promoting transaction, after locking.
    """
    plan = _Plan(conn, spec, _resolve_roots(conn, spec))
    stmt = (
        select(V.id)
        .select_from(plan.from_clause(models=False, order=()))
        .where(V.id == version_id, *plan.where)
    )
    return conn.execute(stmt).first() is not None


def unmet_conditions(
    conn: Connection, spec: QuerySpec, version_id: int, *, model_tags: bool = True
) -> list[str]:
    """Each top-level condition of the spec the version fails, described, in one query.

    The failed ones of :func:`judge_conjuncts`.
    """
    judged = judge_conjuncts(conn, spec, version_id, model_tags=model_tags)
    return [text for text, met in judged if not met]


def judge_conjuncts(
    conn: Connection, spec: QuerySpec, version_id: int, *, model_tags: bool = True
) -> list[tuple[str, bool]]:
    """Each top-level condition of the spec, described, and whether the version meets it.

    ``spec.conjuncts()`` are judged one by one (a ``|`` inside one counts as one
    condition), so a denied promotion can list every unmet gate condition at once.

    Args:
        model_tags: a tag condition also holds when the version's model has the tag (as
            in queries); False for a promotion gate on the version's own tags.

    Raises:
        NotFoundError: the version does not exist.
    """
    conjuncts = spec.conjuncts() if spec.where != AllOf(()) else ()
    plan = _Plan(conn, spec, _resolve_roots(conn, spec), join_metrics=False, model_tags=model_tags)
    flags = [case((plan.condition(c), 1), else_=0).label(f"c{i}") for i, c in enumerate(conjuncts)]
    row = conn.execute(select(V.id, *flags).select_from(VERSIONS).where(V.id == version_id)).first()
    if row is None:
        raise NotFoundError("version", version_id)
    return [(describe(c), bool(row._mapping[f"c{i}"])) for i, c in enumerate(conjuncts)]


# --------------------------------------------------------------------------- compilation


def _statement(
    plan: _Plan,
    keys: Sequence[OrderKey],
    *,
    after: Sequence[object] | None,
    limit: int | None,
    offset: int = 0,
) -> Select[Any]:
    """Versions with their model name, then one labelled column per sort key, in order."""
    sort = plan.sort_columns(keys)
    labels = [col.expr.label(_SORT_LABEL.format(i)) for i, col in enumerate(sort)]
    order = [col.order_clause() for col in sort]
    conditions = [*plan.where]
    if after is not None:
        conditions.append(_after(sort, after))
    if plan.tag is None or limit is None:
        stmt = (
            select(VERSIONS, M.name.label("model_name"), *labels)
            .select_from(plan.from_clause(models=True, order=keys))
            .where(*conditions)
            .order_by(*order)
        )
    else:
        # "Tagged" is "the version's tag OR its model's tag"; under an OR, PostgreSQL can
        # only hash every tagged id before the first row. Each source alone is a
        # semi-join it can walk in order and stop after `offset + limit` rows.
        window = limit + offset
        branches = [
            select(V.id.label("cmr_id"), *labels)
            .select_from(plan.from_clause(models=True, order=keys))
            .where(*conditions, source)
            .order_by(*order)
            .limit(window)
            .subquery()
            for source in plan.tag_sources()
        ]
        tagged = union(*(select(b) for b in branches)).subquery("cmr_tagged")
        merged = [
            _SortColumn(
                plan.text_order(tagged.c[label.name], key),
                descending=col.descending,
                nullable=col.nullable,
            )
            for label, key, col in zip(labels, keys, sort, strict=True)
        ]
        stmt = (
            select(
                VERSIONS,
                M.name.label("model_name"),
                *(col.expr.label(label.name) for col, label in zip(merged, labels, strict=True)),
            )
            .select_from(
                VERSIONS.join(MODELS, V.model_id == M.id).join(tagged, tagged.c.cmr_id == V.id)
            )
            .order_by(*(col.order_clause() for col in merged))
        )
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return stmt


def _fetch(
    conn: Connection,
    plan: _Plan,
    keys: Sequence[OrderKey],
    *,
    after: Sequence[object] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[_Sorted]:
    rows = conn.execute(_statement(plan, keys, after=after, limit=limit, offset=offset)).all()
    return [(row, tuple(row)[-len(keys) :]) for row in rows]


def _missing_last(spec: QuerySpec) -> str | None:
    """The first sort key's metric, when no condition makes every match have it."""
    first = spec.order[0] if spec.order else None
    if first is None or first.field != "metric":
        return None
    required = {c.name for c in spec.conjuncts() if isinstance(c, MetricCondition)}
    return None if first.metric in required else first.metric


def _fetch_split(
    conn: Connection,
    spec: QuerySpec,
    roots: dict[VersionRef, int],
    keys: Sequence[OrderKey],
    *,
    after: Sequence[object] | None,
    count: int,
) -> list[_Sorted]:
    """Up to ``count`` rows ordered first by a metric some versions lack.

    One ``ORDER BY value NULLS LAST`` over a left join would sort every match before
    returning the first row. Instead, read the versions that have the metric in the
    metrics index's order, and only if they run out, those lacking it by the other keys.
    """
    metric = keys[0].metric
    assert metric is not None
    found: list[_Sorted] = []
    if after is None or after[0] is not None:
        plan = _Plan(conn, spec, roots, metric_presence=(metric, True), split_tag=True)
        found = _fetch(conn, plan, keys, after=after, limit=count)
    if len(found) < count:
        rest_after = after[1:] if after is not None and after[0] is None else None
        plan = _Plan(conn, spec, roots, metric_presence=(metric, False), split_tag=True)
        rest = _fetch(conn, plan, keys[1:], after=rest_after, limit=count - len(found))
        found.extend((row, (None, *values)) for row, values in rest)
    return found


def _resolve_roots(conn: Connection, spec: QuerySpec) -> dict[VersionRef, int]:
    """The version id each lineage predicate's reference names, resolved once."""
    roots: dict[VersionRef, int] = {}
    for leaf in iter_leaves(spec.where):
        if isinstance(leaf, RelatedTo) and leaf.ref not in roots:
            roots[leaf.ref] = resolve_ref(conn, leaf.ref)
    return roots


class _SortColumn:
    """One sort key as SQL: the expression, its direction, and whether it can be NULL."""

    __slots__ = ("descending", "expr", "nullable")

    def __init__(self, expr: ColumnElement[Any], *, descending: bool, nullable: bool) -> None:
        self.expr = expr
        self.descending = descending
        self.nullable = nullable

    def order_clause(self) -> UnaryExpression[Any]:
        clause = self.expr.desc() if self.descending else self.expr.asc()
        # Missing metrics sort last both ways. Non-null keys keep the default NULLS
        # placement so that PostgreSQL can read them straight off a btree index.
        return clause.nulls_last() if self.nullable else clause


class _Plan:
    """One spec compiled against one connection: refs resolved, metric joins chosen."""

    def __init__(
        self,
        conn: Connection,
        spec: QuerySpec,
        roots: dict[VersionRef, int],
        *,
        join_metrics: bool = True,
        metric_presence: tuple[str, bool] | None = None,
        split_tag: bool = False,
        model_tags: bool = True,
    ) -> None:
        """Compile ``spec``'s conditions.

        Args:
            roots: lineage references resolved to version ids (``_resolve_roots``).
            join_metrics: turn required metric conditions into joins (else ``EXISTS``).
            metric_presence: ``(name, True)`` keeps only versions with that metric (by an
                inner join), ``(name, False)`` only those without it.
            split_tag: leave the first required tag out of ``where`` and set ``tag``, for
                a statement that reads its two sources separately (see ``_statement``).
            model_tags: a tag condition also holds for the model's tags.
        """
        self._model_tags = model_tags
        self._postgres = conn.dialect.name == "postgresql"
        self._roots = roots
        self._ctes = 0
        self._exists = 0
        # Metric conditions that must hold join the metrics table once per metric name.
        self._joined: dict[str, tuple[FromClause, list[ColumnElement[bool]]]] = {}
        self._outer: dict[str, FromClause] = {}
        self.where: list[ColumnElement[bool]] = []
        self.tag: str | None = None
        for part in spec.conjuncts():
            if split_tag and self.tag is None and isinstance(part, HasTag):
                self.tag = part.tag
            elif join_metrics and isinstance(part, MetricCondition):
                alias, conditions = self._metric_join(part.name)
                conditions.append(_compare(alias.c.value, part))
            elif part != AllOf(()):
                self.where.append(self.condition(part))
        if metric_presence is not None:
            name, present = metric_presence
            if present:
                self._metric_join(name)
            else:
                m = METRICS.alias("cmr_lacking")
                has = select(m.c.version_id).where(m.c.version_id == V.id, m.c.name == name)
                self.where.append(not_(has.correlate(VERSIONS).exists()))

    def _metric_join(self, name: str) -> tuple[FromClause, list[ColumnElement[bool]]]:
        if name not in self._joined:
            self._joined[name] = (METRICS.alias(f"cmr_metric_{len(self._joined)}"), [])
        return self._joined[name]

    def from_clause(self, *, models: bool, order: Sequence[OrderKey]) -> FromClause:
        """Versions, their model (if wanted), the metric joins and the sort-metric joins."""
        joined: FromClause = VERSIONS
        if models:
            joined = joined.join(MODELS, V.model_id == M.id)
        for name, (alias, conditions) in self._joined.items():
            on = and_(alias.c.version_id == V.id, alias.c.name == name, *conditions)
            joined = joined.join(alias, on)
        joined_for_order: set[str] = set()
        for key in order:
            metric = key.metric
            if key.field != "metric" or metric is None or metric in self._joined:
                continue
            if metric not in joined_for_order:
                alias = self._sort_metric(metric)
                on = and_(alias.c.version_id == V.id, alias.c.name == metric)
                joined = joined.outerjoin(alias, on)
                joined_for_order.add(metric)
        return joined

    def _sort_metric(self, name: str) -> FromClause:
        """The left-joined alias for a sort metric that no condition requires."""
        if name not in self._outer:
            self._outer[name] = METRICS.alias(f"cmr_sort_metric_{len(self._outer)}")
        return self._outer[name]

    def sort_columns(self, keys: Sequence[OrderKey]) -> list[_SortColumn]:
        # After a joined metric, the id tie-breaker is read from the metrics row, so that
        # (value, version_id) is the index's own order and a keyset comparison on it is
        # one index range (PostgreSQL does not carry row comparisons across the join).
        id_column: ColumnElement[Any] = V.id
        first = keys[0].metric if keys else None
        if first is not None and first in self._joined:
            id_column = self._joined[first][0].c.version_id
        out = []
        for key in keys:
            descending = key.direction == "desc"
            nullable = False
            expr: ColumnElement[Any]
            match key.field:
                case "metric":
                    assert key.metric is not None
                    if key.metric in self._joined:
                        expr = self._joined[key.metric][0].c.value
                    else:
                        expr = self._sort_metric(key.metric).c.value
                        nullable = True
                case "stage":
                    expr = case(
                        {stage.value: rank for rank, stage in enumerate(STAGE_ORDER)},
                        value=V.stage,
                        else_=len(STAGE_ORDER),
                    )
                case "model_name":
                    expr = self._by_code_point(M.name)
                case "version":
                    expr = self._by_code_point(V.version)
                case "id":
                    expr = id_column
                case field:
                    expr = V[field]
            out.append(_SortColumn(expr, descending=descending, nullable=nullable))
        return out

    def tag_sources(self) -> list[ColumnElement[bool]]:
        """The split tag on the version itself, and on its model: one condition each."""
        assert self.tag is not None
        vt, mt = VERSION_TAGS.alias("cmr_split_vtag"), MODEL_TAGS.alias("cmr_split_mtag")
        return [
            V.id.in_(select(vt.c.version_id).where(vt.c.tag == self.tag)),
            V.model_id.in_(select(mt.c.model_id).where(mt.c.tag == self.tag)),
        ]

    def text_order(self, column: ColumnElement[Any], key: OrderKey) -> ColumnElement[Any]:
        """``column`` holding ``key``'s values, compared by code point if they are text."""
        return self._by_code_point(column) if key.field in ("model_name", "version") else column

    def _by_code_point(self, column: ColumnElement[str]) -> ColumnElement[str]:
        # SQLite compares with BINARY (code point order for UTF-8); make PostgreSQL agree
        # whatever the database's collation.
        return column.collate("C") if self._postgres else column

    def condition(self, condition: Condition) -> ColumnElement[bool]:
        """The SQL truth of a condition for the row of ``cmr_model_versions`` in scope."""
        match condition:
            case StageIn(stages):
                return V.stage.in_([s.value for s in stages])
            case FieldEquals("model_name", value):
                return V.model_id.in_(select(M.id).where(M.name == value))
            case FieldEquals(field, value):
                return V[field] == value
            case MetadataEquals(path, value):
                # IS NOT NULL first: a version without the key is false here (not NULL),
                # so that Not(...) matches it, as ~q must.
                found = V.metadata[path].as_string()
                return and_(found.isnot(None), found == value)
            case HasTag(tag):
                vt = VERSION_TAGS.alias(self._name("cmr_vtag"))
                on_version: ColumnElement[bool] = (
                    select(vt.c.version_id)
                    .where(vt.c.version_id == V.id, vt.c.tag == tag)
                    .correlate(VERSIONS)
                    .exists()
                )
                if not self._model_tags:
                    return on_version
                mt = MODEL_TAGS.alias(self._name("cmr_mtag"))
                return or_(
                    on_version,
                    select(mt.c.model_id)
                    .where(mt.c.model_id == V.model_id, mt.c.tag == tag)
                    .correlate(VERSIONS)
                    .exists(),
                )
            case MetricCondition(name):
                m = METRICS.alias(self._name("cmr_mcond"))
                return (
                    select(m.c.version_id)
                    .where(m.c.version_id == V.id, m.c.name == name, _compare(m.c.value, condition))
                    .correlate(VERSIONS)
                    .exists()
                )
            case RelatedTo(relation, ref, max_depth):
                root = self._roots[ref]
                walk = self._walk(root, up=relation == "ancestor_of", max_depth=max_depth)
                return and_(V.id.in_(select(walk.c.node)), V.id != root)
            case AllOf(parts):
                return and_(true(), *(self.condition(p) for p in parts))
            case AnyOf(parts):
                return or_(false(), *(self.condition(p) for p in parts))
            case Not(part):
                return not_(self.condition(part))
        raise AssertionError(condition)  # pragma: no cover - the match is exhaustive

    def _name(self, prefix: str) -> str:
        self._exists += 1
        return f"{prefix}_{self._exists}"

    def _walk(self, root: int, *, up: bool, max_depth: int | None) -> CTE:
        """A recursive CTE of the versions reachable from ``root`` (itself only via a cycle)."""
        near, far = (
            (E.target_version_id, E.source_version_id)
            if up
            else (
                E.source_version_id,
                E.target_version_id,
            )
        )
        self._ctes += 1
        name = f"cmr_lineage_{self._ctes}"
        # UNION (not UNION ALL) drops rows seen before, so each version is expanded once
        # per distinct depth and merges do not multiply the work.
        if max_depth is None:
            seed = select(far.label("node")).where(near == root)
            walk = seed.cte(name, recursive=True)
            return walk.union(select(far).join(walk, near == walk.c.node))
        seed = select(far.label("node"), literal_column("1", Integer).label("depth")).where(
            near == root
        )
        walk = seed.cte(name, recursive=True)
        step = (
            select(far, walk.c.depth + 1)
            .join(walk, near == walk.c.node)
            .where(walk.c.depth < max_depth)
        )
        return walk.union(step)


def _compare(column: ColumnElement[float], condition: MetricCondition) -> ColumnElement[bool]:
    value = condition.value
    match condition.op:
        case "gt":
            return column > value
        case "gte":
            return column >= value
        case "lt":
            return column < value
        case "lte":
            return column <= value
        case "eq":
            return column == value
        case "ne":
            return column != value


def _after(sort: Sequence[_SortColumn], last: Sequence[object]) -> ColumnElement[bool]:
    """Rows strictly after ``last`` in the order ``sort`` describes (the keyset predicate)."""
    values = [literal(v, type_=col.expr.type) for col, v in zip(sort, last, strict=True)]
    directions = {col.descending for col in sort}
    if len(directions) == 1 and not any(col.nullable for col in sort):
        # One row comparison: PostgreSQL turns it into a single index range.
        left = tuple_(*(col.expr for col in sort))
        right = tuple_(*values)
        return left < right if sort[0].descending else left > right
    ties: list[ColumnElement[bool]] = []
    branches: list[ColumnElement[bool]] = []
    for col, raw, value in zip(sort, last, values, strict=True):
        if col.nullable and raw is None:
            # Missing values come last: nothing sorts after NULL within this key.
            ties.append(col.expr.is_(None))
            continue
        beyond = col.expr < value if col.descending else col.expr > value
        if col.nullable:
            beyond = or_(beyond, col.expr.is_(None))
        branches.append(and_(*ties, beyond))
        ties.append(col.expr == value)
    return or_(false(), *branches)
