"""Lineage in SQL: WITH RECURSIVE traversal and the cycle-checked insert of an edge.

Every walk is one recursive query that starts from a version and follows the indexed
edge columns (``(source, target)`` unique going down, ``(target, source)`` going up), so
its cost grows with the part of the graph it visits and never with the whole graph.

Two shapes of walk are used:

* The cycle check carries only the version id and uses ``UNION``: both PostgreSQL and
  SQLite drop a row that duplicates any earlier row of a recursive query, so each
  version is expanded at most once (a true visited set), and ``EXISTS`` stops the walk at
  the first hit.
* Ancestors and descendants carry ``(version, distance, relationship)`` so each result
  has its shortest distance and the edge label that reached it. A version reachable by
  paths of several lengths appears once per distinct length before the final
  ``ROW_NUMBER()`` keeps its nearest one: the work is (versions visited) x (distinct path
  lengths to each), which in lineage graphs (trees with occasional merges) stays close to
  the number of versions visited. ``max_depth`` bounds the walk inside the recursion.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Literal

from sqlalchemy import (
    CTE,
    Connection,
    Integer,
    Select,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
)

from crucible_model_registry.domain.audit import Attribution
from crucible_model_registry.domain.enums import Relationship
from crucible_model_registry.domain.lineage import Direction, LineageGraph, LineageHit
from crucible_model_registry.domain.records import LineageEdge
from crucible_model_registry.domain.refs import VersionRef
from crucible_model_registry.errors import LineageCycleError, NotFoundError, ValidationError
from crucible_model_registry.store import audit
from crucible_model_registry.store._records import (
    ID_ARRAY,
    IN_CHUNK,
    edge_from_row,
    edges_from_rows,
    enum_of,
    id_array,
    load_versions,
    version_columns,
    versions_from_rows,
)
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.models import now, resolve_ref
from crucible_model_registry.store.tables import EDGES, VERSIONS

__all__ = [
    "LINEAGE_LOCK_KEY",
    "add_edge",
    "ancestors",
    "descendants",
    "lineage",
    "would_create_cycle",
]

E = EDGES.c
V = VERSIONS.c

Way = Literal["up", "down"]

# One advisory-lock key for all lineage writes in a database (advisory locks are scoped
# to the database already): the first 8 bytes of a SHA-256, so no other application's
# hand-picked small integer collides with it by accident.
LINEAGE_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"crucible_model_registry.lineage").digest()[:8], "big", signed=True
)


# --------------------------------------------------------------------------- walks


def _ends(way: Way) -> tuple[Any, Any]:
    """(the column a walk arrives by, the column it moves on to) for one direction."""
    if way == "up":
        return E.target_version_id, E.source_version_id
    return E.source_version_id, E.target_version_id


def _walk(way: Way, *, limited: bool) -> CTE:
    """Rows ``(node, distance, relationship)`` for every path length to every reached node.

    Bound parameters: ``start`` (a version id) and, if ``limited``, ``max_depth``.
    """
    near, far = _ends(way)
    seed = select(
        far.label("node"),
        literal_column("1", Integer).label("distance"),
        E.relationship.label("relationship"),
    ).where(near == bindparam("start", type_=Integer))
    walk = seed.cte(f"cmr_walk_{way}", recursive=True)
    step = select(far, walk.c.distance + 1, E.relationship).join(walk, near == walk.c.node)
    if limited:
        step = step.where(walk.c.distance < bindparam("max_depth", type_=Integer))
    return walk.union(step)


def _visit(starts: Any, way: Way) -> CTE:
    """Rows ``(node)``: each version reachable from ``starts`` (an IN operand), once."""
    near, far = _ends(way)
    seed = select(far.label("node")).where(near.in_(starts))
    visit = seed.cte(f"cmr_visit_{way}", recursive=True)
    return visit.union(select(far).join(visit, near == visit.c.node))


# Statements are built once and reused with new parameters: building a recursive SELECT
# in SQLAlchemy costs more (~1-2 ms) than running it on a small graph.


@functools.cache
def _hits_statement(way: Way, *, limited: bool) -> Select[Any]:
    walk = _walk(way, limited=limited)
    ranked = select(
        walk.c.node,
        walk.c.distance,
        walk.c.relationship,
        func.row_number()
        .over(partition_by=walk.c.node, order_by=(walk.c.distance, walk.c.relationship))
        .label("rank"),
    ).subquery("cmr_ranked")
    return (
        version_columns()
        .add_columns(
            ranked.c.distance.label("lineage_distance"),
            ranked.c.relationship.label("lineage_relationship"),
        )
        .join(ranked, ranked.c.node == V.id)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.distance, V.id)
    )


@functools.cache
def _check_statement() -> Select[bool, bool]:
    """``(linked, closes_cycle)`` for a new edge ``:parent -> :child``, in one round trip."""
    parent = bindparam("parent", type_=Integer)
    child = bindparam("child", type_=Integer)
    linked = exists().where(E.source_version_id == parent, E.target_version_id == child)
    # Walk up from the parent looking for the child: in lineage graphs a version has far
    # fewer ancestors than a popular base has descendants. A child without children of its
    # own cannot be anyone's ancestor, which settles the common case (attaching a new
    # leaf) without a walk.
    visit = _visit([parent], "up")
    has_children = exists().where(E.source_version_id == child)
    found = exists(select(visit.c.node).where(visit.c.node == child))
    return select(linked.label("linked"), (has_children & found).label("closes_cycle"))


def _hits(conn: Connection, start_id: int, way: Way, max_depth: int | None) -> list[LineageHit]:
    params = {"start": start_id}
    if max_depth is not None:
        params["max_depth"] = max_depth
    rows = conn.execute(_hits_statement(way, limited=max_depth is not None), params).all()
    versions = versions_from_rows(conn, rows)
    # The two lineage columns close every row (see _hits_statement): read them by position.
    return [
        LineageHit(version, int(row[-2]), enum_of(Relationship, row[-1]))
        for version, row in zip(versions, rows, strict=True)
    ]


def _check(conn: Connection, parent_id: int, child_id: int) -> tuple[bool, bool]:
    """(is there an edge parent -> child already, would it close a cycle)."""
    row = conn.execute(_check_statement(), {"parent": parent_id, "child": child_id}).one()
    return bool(row.linked), parent_id == child_id or bool(row.closes_cycle)


def _existing_ids(
    db: Database, conn: Connection, refs: list[VersionRef], *, lock: bool = False
) -> list[int]:
    """The version ids ``refs`` name, checked in one query when they are ids.

    With ``lock``, the versions are also kept from being deleted until the transaction
    ends (FOR KEY SHARE still lets promotions and metric updates through).

    Raises:
        NotFoundError: a ref names no version.
    """
    ids = [ref.id if ref.id is not None else resolve_ref(conn, ref) for ref in refs]
    query = select(V.id).where(V.id.in_(sorted(set(ids))))
    if lock and not db.is_sqlite:
        query = query.with_for_update(read=True, key_share=True)
    found = set(conn.execute(query).scalars())
    for version_id in ids:
        if version_id not in found:
            raise NotFoundError("version", version_id)
    return ids


def _start_hits(
    conn: Connection, ref: VersionRef, way: Way, max_depth: int | None
) -> list[LineageHit]:
    # An id is checked only when the walk finds nothing: one round trip fewer.
    start_id = ref.id if ref.id is not None else resolve_ref(conn, ref)
    hits = _hits(conn, start_id, way, max_depth)
    if not hits and ref.id is not None:
        resolve_ref(conn, ref)
    return hits


# --------------------------------------------------------------------------- reads


# PostgreSQL plans a recursive query once, guessing the size of each level from the seed
# row count; with small or stale statistics it picks a hash join over a sequential scan of
# every edge, once per level, so a walk would cost as much as the whole graph. Off for
# this transaction only, so that each level is an index lookup per version visited.
# The same guesses (tens of thousands of rows per level on a large graph) push the plan's
# cost past jit_above_cost: compiling it took ~26 ms of a 1,000-descendant walk whose
# execution takes ~3 ms (issue 21), so JIT is off for these transactions too.
_PLANNER_SETTINGS = (
    "SELECT set_config('enable_hashjoin', 'off', true), "
    "set_config('enable_mergejoin', 'off', true), set_config('enable_seqscan', 'off', true), "
    "set_config('jit', 'off', true)"
)


def _steer_planner(db: Database, conn: Connection, *, snapshot: bool = False) -> None:
    """Apply :data:`_PLANNER_SETTINGS`; with ``snapshot``, every statement of the
    transaction also sees the same snapshot (REPEATABLE READ), in the same round trip."""
    if db.is_postgres:
        first = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; " if snapshot else ""
        conn.exec_driver_sql(first + _PLANNER_SETTINGS)


def ancestors(db: Database, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
    """The versions ``ref`` descends from, nearest first, each once.

    Raises:
        NotFoundError: ``ref`` names no version.
    """
    with db.read() as conn:
        _steer_planner(db, conn)
        return _start_hits(conn, ref, "up", max_depth)


def descendants(db: Database, ref: VersionRef, max_depth: int | None) -> list[LineageHit]:
    """The versions made from ``ref`` (directly or not), nearest first, each once.

    Raises:
        NotFoundError: ``ref`` names no version.
    """
    with db.read() as conn:
        _steer_planner(db, conn)
        return _start_hits(conn, ref, "down", max_depth)


def lineage(
    db: Database, ref: VersionRef, *, direction: Direction, max_depth: int | None
) -> LineageGraph:
    """A version with its ancestors and/or descendants and the edges between them.

    Raises:
        NotFoundError: ``ref`` names no version.
    """
    with db.read() as conn:
        # Several statements (the focus, each walk, the edges) must agree with each other.
        _steer_planner(db, conn, snapshot=True)
        focus_id = resolve_ref(conn, ref)
        focus = load_versions(conn, [focus_id])[0]
        up = _hits(conn, focus_id, "up", max_depth) if direction != "down" else []
        down = _hits(conn, focus_id, "down", max_depth) if direction != "up" else []
        members = {focus_id, *(h.version.id for h in up), *(h.version.id for h in down)}
        edges = _edges_into(conn, sorted(members), members)
    return LineageGraph(focus=focus, ancestors=tuple(up), descendants=tuple(down), edges=edges)


# Built once. PostgreSQL gets the ids as one array parameter: the same SQL text for any
# number of ids, where an IN list of a thousand placeholders was re-parsed by SQLAlchemy
# and the driver on every call (issue 21).
_EDGES_INTO = select(EDGES).where(E.target_version_id.in_(bindparam("ids", expanding=True)))
_EDGES_INTO_ARRAY = select(EDGES).where(E.target_version_id == any_(ID_ARRAY))


def _edges_into(conn: Connection, ids: list[int], members: set[int]) -> tuple[LineageEdge, ...]:
    # Edges are found by their child: a version has few parents, while a popular parent
    # may have thousands of children outside the graph (its focus's siblings).
    array = conn.dialect.name == "postgresql"
    found: list[LineageEdge] = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        if array:
            rows = conn.execute(_EDGES_INTO_ARRAY, {"ids": id_array(chunk)}).all()
        else:
            rows = conn.execute(_EDGES_INTO, {"ids": chunk}).all()
        found.extend(edges_from_rows(rows, sources=members))
    return tuple(sorted(found, key=lambda e: e.id))


def would_create_cycle(db: Database, parent: VersionRef, child: VersionRef) -> bool:
    """Would an edge ``parent -> child`` make a version its own ancestor?

    Raises:
        NotFoundError: either ref names no version.
    """
    with db.read() as conn:
        _steer_planner(db, conn)
        parent_id, child_id = _existing_ids(db, conn, [parent, child])
        return _check(conn, parent_id, child_id)[1]


# --------------------------------------------------------------------------- write


def _lock_lineage(db: Database, conn: Connection) -> None:
    """Serialise lineage writes on this database until the transaction ends.

    Two edges can each be acyclic alone and close a cycle together (a -> b and b -> a, or a
    longer loop): two transactions that each check then insert would both see no cycle.
    Whoever holds this lock checks and inserts alone, and releases it only at commit, so
    the next holder's check sees that edge.

    * PostgreSQL: a transaction-level advisory lock on one key. It serialises lineage
      writes only (registration with parents does not take it: edges into a brand-new
      version cannot close a cycle), and cannot deadlock with row locks because it is
      always taken first. The transaction is switched to READ COMMITTED first: under
      REPEATABLE READ or SERIALIZABLE (a host application's engine may default to either)
      the snapshot would predate the lock wait and miss the edge the previous holder
      committed. All of it, with the planner settings of :func:`_steer_planner`, goes in
      one round trip.
    * SQLite: the write transaction began with BEGIN IMMEDIATE, which already holds the
      database's single write lock.
    * Other dialects get no extra lock; there, concurrent add_lineage calls are only as
      safe as the engine's isolation level makes them.
    """
    if db.is_postgres:
        # Constants only (no user input), so the three statements can share one message.
        conn.exec_driver_sql(
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; "
            f"SELECT pg_advisory_xact_lock({LINEAGE_LOCK_KEY}); {_PLANNER_SETTINGS}"
        )


def add_edge(
    db: Database,
    parent: VersionRef,
    child: VersionRef,
    *,
    relationship: Relationship,
    metadata: dict[str, Any],
    by: Attribution,
) -> LineageEdge:
    """Record that ``child`` was made from ``parent``, refusing a cycle; one transaction.

    The audit entry (``add_lineage``, targeting the child) is part of the transaction.

    Raises:
        NotFoundError: either ref names no version.
        LineageCycleError: ``child`` is ``parent`` or one of its ancestors.
        ValidationError: the edge exists already (field ``edge``).
    """
    at = now()
    with db.write() as conn:
        _lock_lineage(db, conn)
        parent_id, child_id = _existing_ids(db, conn, [parent, child], lock=True)
        linked, closes_cycle = _check(conn, parent_id, child_id)
        if closes_cycle:
            raise LineageCycleError(parent_id, child_id)
        if linked:
            raise ValidationError.single(
                "edge",
                f"versions {parent_id} -> {child_id} are already linked; "
                "an edge records one relationship",
            )
        row = conn.execute(
            insert(EDGES)
            .values(
                source_version_id=parent_id,
                target_version_id=child_id,
                relationship=relationship.value,
                metadata=metadata,
                created_at=at,
            )
            .returning(*EDGES.c)
        ).one()
        details = {
            "edge_id": row.id,
            "parent": audit.version_target(conn, parent_id),
            "parent_id": parent_id,
            "child_id": child_id,
            "relationship": relationship.value,
        }
        audit.write(conn, by, "add_lineage", audit.version_target(conn, child_id), details, at=at)
    return edge_from_row(row)
