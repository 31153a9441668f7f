"""The query DSL against a plain-Python oracle: random registries, random composed queries.

Each example seeds a few hundred versions (random stages, recipes, base models, version
and model tags, partial metrics with ties, created/updated times with ties, lineage edges
with merges) straight into the tables, then checks that random queries built with every
builder method, ``|``, ``&`` and ``~``, random orderings, limits and offsets return exactly
the versions a Python filter over the same data returns, in the same order; that
``count()`` agrees; and that walking every ``page()`` gives the full ordered result.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, delete, insert

from crucible_model_registry import Query, Registry
from crucible_model_registry.store.tables import (
    ARTIFACTS,
    EDGES,
    METRICS,
    MODEL_TAGS,
    MODELS,
    VERSION_TAGS,
    VERSIONS,
    metadata,
)

STAGES = ["experiment", "staging", "production", "archived"]
STAGE_INPUTS = [*STAGES, "development"]
RECIPES = ["sl_basic", "dpo", "rl"]
BASES = ["org/base-1", "org/base-2"]
# Mixed case and punctuation: code-point order differs from most collations.
MODEL_NAMES = ["alpha", "Beta", "beta", "ALPHA", "gamma_1", "org/delta", "eta.3", "Zeta"]
METRIC_NAMES = ["accuracy", "loss", 'it\'s "odd"; --精度', "bleu"]
TAGS = ["sft", "eval", "Sft", "team-x", "wip"]
VALUES = [-1.0, 0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
OPS = {
    "gt": ">",
    ">": ">",
    "gte": ">=",
    ">=": ">=",
    "lt": "<",
    "<": "<",
    "lte": "<=",
    "<=": "<=",
    "eq": "==",
    "==": "==",
    "ne": "!=",
    "!=": "!=",
}
ORDER_FIELDS = ["created_at", "updated_at", "version", "model_name", "stage", "id"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- the data


@dataclass
class World:
    models: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    edges: list[tuple[int, int]]
    children: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    parents: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        for parent, child in self.edges:
            self.children[parent].append(child)
            self.parents[child].append(parent)

    def reach(self, start: int, *, up: bool, max_depth: int | None) -> set[int]:
        links = self.parents if up else self.children
        seen: dict[int, int] = {}
        todo = deque([(start, 0)])
        while todo:
            node, depth = todo.popleft()
            if max_depth is not None and depth == max_depth:
                continue
            for nxt in links[node]:
                if nxt not in seen:
                    seen[nxt] = depth + 1
                    todo.append((nxt, depth + 1))
        seen.pop(start, None)
        return set(seen)


def make_world(seed: int, size: int) -> World:
    rng = random.Random(seed)
    models: list[dict[str, Any]] = [
        {"id": i + 1, "name": name, "tags": rng.sample(TAGS, rng.randint(0, 2))}
        for i, name in enumerate(MODEL_NAMES)
    ]
    numbers: dict[int, int] = defaultdict(int)
    versions = []
    edges: list[tuple[int, int]] = []
    for vid in range(1, size + 1):
        model = rng.choice(models)
        numbers[model["id"]] += 1
        k = numbers[model["id"]]
        created = T0 + timedelta(seconds=rng.randint(0, size // 3))
        versions.append(
            {
                "id": vid,
                "model_id": model["id"],
                "model_name": model["name"],
                "model_tags": model["tags"],
                "version": rng.choice([str(k), f"1.{k}", f"v{k}", f"{k}.0-rc"]),
                "stage": rng.choice(STAGES),
                "recipe": rng.choice(RECIPES),
                "base_model": rng.choice(BASES),
                "config_hash": config_hash(vid),
                "metrics": {m: rng.choice(VALUES) for m in METRIC_NAMES if rng.random() < 0.6},
                "tags": rng.sample(TAGS, rng.randint(0, 2)),
                "created_at": created,
                "updated_at": created + timedelta(seconds=rng.choice([0, 0, 1, 7])),
                "artifacts": rng.randint(0, 2),
            }
        )
        if vid > 1 and rng.random() < 0.6:
            near = max(1, vid - 1 - int(rng.expovariate(0.5)))
            parents = {near, rng.randrange(1, vid)} if rng.random() < 0.2 else {near}
            edges.extend((p, vid) for p in sorted(parents))
    return World(models, versions, edges)


def config_hash(index: int) -> str:
    return hashlib.sha256(f"config-{index}".encode()).hexdigest()


def seed(registry: Registry, world: World) -> None:
    """Write the world into the registry's tables as the registry itself would."""
    with registry.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
        conn.execute(
            insert(MODELS),
            [
                {
                    "id": m["id"],
                    "name": m["name"],
                    "description": None,
                    "tags": m["tags"],
                    "metadata": {},
                    "version_seq": 0,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for m in world.models
            ],
        )
        rows = [{"model_id": m["id"], "tag": t} for m in world.models for t in m["tags"]]
        insert_rows(conn, MODEL_TAGS, rows)
        conn.execute(
            insert(VERSIONS),
            [
                {
                    "id": v["id"],
                    "model_id": v["model_id"],
                    "version": v["version"],
                    "stage": v["stage"],
                    "recipe": v["recipe"],
                    "base_model": v["base_model"],
                    "config_hash": v["config_hash"],
                    "training_config": {},
                    "metrics": v["metrics"],
                    "tags": v["tags"],
                    "description": None,
                    "created_at": v["created_at"],
                    "updated_at": v["updated_at"],
                }
                for v in world.versions
            ],
        )
        rows = [
            {"version_id": v["id"], "name": k, "value": x}
            for v in world.versions
            for k, x in v["metrics"].items()
        ]
        insert_rows(conn, METRICS, rows)
        rows = [{"version_id": v["id"], "tag": t} for v in world.versions for t in v["tags"]]
        insert_rows(conn, VERSION_TAGS, rows)
        rows = [
            {
                "version_id": v["id"],
                "type": "checkpoint",
                "storage_backend": "s3",
                "storage_path": f"s3://bucket/{v['id']}/{i}",
                "checksum": None,
                "size_bytes": None,
                "manifest": None,
                "created_at": v["created_at"],
            }
            for v in world.versions
            for i in range(v["artifacts"])
        ]
        insert_rows(conn, ARTIFACTS, rows)
        rows = [
            {
                "source_version_id": p,
                "target_version_id": c,
                "relationship": "fine_tuned_from",
                "metadata": {},
                "created_at": T0,
            }
            for p, c in world.edges
        ]
        insert_rows(conn, EDGES, rows)


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:  # an INSERT given no rows would insert one row of defaults
        conn.execute(insert(table), rows)


# --------------------------------------------------------------------------- queries

dirs = st.sampled_from(["asc", "desc"])
leaves = st.one_of(
    st.tuples(st.just("stage"), st.lists(st.sampled_from(STAGE_INPUTS), min_size=1, max_size=3)),
    st.tuples(st.just("recipe"), st.sampled_from([*RECIPES, "absent"])),
    st.tuples(st.just("base_model"), st.sampled_from(BASES)),
    st.tuples(st.just("model_name"), st.sampled_from([*MODEL_NAMES, "nobody"])),
    st.tuples(st.just("tag"), st.sampled_from([*TAGS, "none"])),
    st.tuples(st.just("config_hash"), st.integers(1, 400)),
    st.tuples(
        st.just("metric"),
        st.sampled_from([*METRIC_NAMES, "absent"]),
        st.sampled_from(sorted(OPS)),
        st.one_of(
            st.sampled_from(VALUES),
            st.integers(-1, 2),
            st.floats(-2, 2, allow_nan=False, allow_infinity=False),
        ),
    ),
    st.tuples(
        st.sampled_from(["descendant_of", "ancestor_of"]),
        st.integers(0, 10**6),
        st.one_of(st.none(), st.integers(1, 3)),
        st.booleans(),  # name it by "model@version" rather than by id
    ),
)
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.tuples(st.just("and"), kids, kids),
        st.tuples(st.just("or"), kids, kids),
        st.tuples(st.just("not"), kids),
    ),
    max_leaves=6,
)
orders = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(ORDER_FIELDS), dirs),
        st.tuples(st.just("metric"), dirs, st.sampled_from(METRIC_NAMES)),
    ),
    max_size=2,
)
query_shapes = st.tuples(
    st.lists(trees, max_size=3),
    orders,
    st.one_of(st.none(), st.integers(0, 40)),
    st.integers(0, 15),
    st.sampled_from([23, 64, 1000]),
)


def root_of(world: World, node: tuple[Any, ...]) -> int:
    return int(node[1]) % len(world.versions) + 1


def build(world: World, node: tuple[Any, ...]) -> Query:
    """The public builder's Query for a generated condition tree."""
    kind = node[0]
    if kind == "and":
        return build(world, node[1]) & build(world, node[2])
    if kind == "or":
        return build(world, node[1]) | build(world, node[2])
    if kind == "not":
        return ~build(world, node[1])
    return add_leaf(world, Query(), node)


def add_leaf(world: World, query: Query, node: tuple[Any, ...]) -> Query:
    kind = node[0]
    match kind:
        case "stage":
            return query.where_stage(node[1])
        case "recipe":
            return query.where_recipe(node[1])
        case "base_model":
            return query.where_base_model(node[1])
        case "model_name":
            return query.where_model_name(node[1])
        case "tag":
            return query.where_tag(node[1])
        case "config_hash":
            return query.where_config_hash(config_hash(node[1]))
        case "metric":
            return query.where_metric(node[1], node[2], node[3])
        case "descendant_of" | "ancestor_of":
            version = world.versions[root_of(world, node) - 1]
            ref: object = version["id"]
            if node[3]:
                ref = f"{version['model_name']}@{version['version']}"
            method = (
                query.where_descendant_of if kind == "descendant_of" else query.where_ancestor_of
            )
            return method(ref, max_depth=node[2])
    raise AssertionError(node)


def holds(world: World, node: tuple[Any, ...], v: dict[str, Any]) -> bool:
    """The oracle: does version ``v`` satisfy the generated condition?"""
    kind = node[0]
    match kind:
        case "and":
            return holds(world, node[1], v) and holds(world, node[2], v)
        case "or":
            return holds(world, node[1], v) or holds(world, node[2], v)
        case "not":
            return not holds(world, node[1], v)
        case "stage":
            wanted = {"experiment" if s == "development" else s for s in node[1]}
            return v["stage"] in wanted
        case "recipe" | "base_model" | "model_name":
            return bool(v[kind] == node[1])
        case "tag":
            return node[1] in v["tags"] or node[1] in v["model_tags"]
        case "config_hash":
            return bool(v["config_hash"] == config_hash(node[1]))
        case "metric":
            if node[1] not in v["metrics"]:
                return False
            actual, value = float(v["metrics"][node[1]]), float(node[3])
            return {
                ">": actual > value,
                ">=": actual >= value,
                "<": actual < value,
                "<=": actual <= value,
                "==": actual == value,
                "!=": actual != value,
            }[OPS[node[2]]]
        case "descendant_of" | "ancestor_of":
            reached = world.reach(root_of(world, node), up=kind == "ancestor_of", max_depth=node[2])
            return v["id"] in reached
    raise AssertionError(node)


def oracle_order(order: list[tuple[Any, ...]]) -> functools.partial[int]:
    keys: list[tuple[str, str, str | None]] = []
    for item in order:
        keys.append((item[0], item[1], item[2] if item[0] == "metric" else None))
        if item[0] == "id":
            break
    else:
        keys.append(("id", keys[-1][1] if keys else "asc", None))
    return functools.partial(compare, keys)


def compare(keys: list[tuple[str, str, str | None]], a: dict[str, Any], b: dict[str, Any]) -> int:
    for name, direction, metric in keys:
        if name == "metric":
            x, y = a["metrics"].get(metric), b["metrics"].get(metric)
            if x is None or y is None:
                if x is None and y is None:
                    continue
                return 1 if x is None else -1  # missing last, whatever the direction
        elif name == "stage":
            x, y = STAGES.index(a["stage"]), STAGES.index(b["stage"])
        else:
            x, y = a[name], b[name]
        if x != y:
            result = -1 if x < y else 1
            return result if direction == "asc" else -result
    return 0


# --------------------------------------------------------------------------- the property


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    world_seed=st.integers(0, 2**32 - 1),
    size=st.integers(150, 300),
    shapes=st.lists(query_shapes, min_size=8, max_size=8),
)
def test_queries_match_the_oracle(registry: Registry, world_seed: int, size: int, shapes):
    world = make_world(world_seed, size)
    seed(registry, world)
    for conditions, order, limit, offset, page_size in shapes:
        query = Query(registry)
        for node in conditions:
            if node[0] in ("and", "or", "not"):
                query = query & build(world, node)
            else:
                query = add_leaf(world, query, node)
        for item in order:
            if item[0] == "metric":
                query = query.order_by_metric(item[2], item[1])
            else:
                query = query.order_by(item[0], item[1])
        query = query.limit(limit).offset(offset)

        matching = [v for v in world.versions if all(holds(world, c, v) for c in conditions)]
        ordered = sorted(matching, key=functools.cmp_to_key(oracle_order(order)))
        end = None if limit is None else offset + limit
        expected = [(v["id"], v["model_name"], v["artifacts"]) for v in ordered[offset:end]]

        got = [(v.id, v.model_name, len(v.artifacts)) for v in query.execute()]
        assert got == expected, (conditions, order, limit, offset)
        assert query.count() == len(matching)

        paged: list[int] = []
        page = query.page(page_size)
        while True:
            paged.extend(v.id for v in page.items)
            if page.next_cursor is None:
                break
            page = query.page(page_size, page.next_cursor)
        assert paged == [v["id"] for v in ordered], (conditions, order, page_size)
