"""Lineage speed on PostgreSQL: 1,000,000 versions against 10,000, and load-everything BFS.

Run: ``.venv/bin/python bench/lineage.py [--url URL] [--versions N] [--runs N] [--keep]
[--explain]``. ``--url`` names a PostgreSQL server's maintenance database (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); the script creates its own
databases there (``cmr_bench_lineage_large`` and ``_small``, 100x fewer versions), loads
them inside the server with ``INSERT ... SELECT`` over ``generate_series``, and drops them
at the end unless ``--keep`` (then a later run reuses them).

The graph is a forest of identical families of 2,000 versions each (one model per
family), so that the large and the small database hold the same neighbourhoods:

* chain A: 100 versions, each fine-tuned from the one before;
* chain B: 200 versions, each from the one before, every tenth also merged from the
  chain-A version of the same index (diamonds with paths of different lengths);
* fan F: a root with 10 children, each with 99 children (1,000 descendants), every
  tenth leaf also merged from a second hub;
* 700 more versions in short branches off the chains (never under F).

Timed through the public API (SQL, decoding, the artifact batch, all included), with
p50/p95 over ``--runs`` calls on random families:

* ``get_ancestors`` of B[50] (50 levels below B[0]; 96 ancestors, the farthest 51 edges
  away through the merges);
* ``get_descendants`` of F (1,000 descendants), and of the root of the wide fan W
  (10,000 descendants: one more model, loaded into both databases, whose root has 100
  children with 99 children each);
* ``get_lineage`` of F (a graph of 1,001 versions and 1,099 edges), and its ``to_dot()``
  and ``to_mermaid()`` renderings alone;
* ``add_lineage`` A[50] of one family -> a chain-B version of another (accepted; the
  cycle check walks A[50]'s 50 ancestors), and B[50] -> A[5] of the same family (refused
  as a cycle);
* the same ancestors query done the way the original design did it: load every edge,
  breadth-first search in Python, load the versions found.

Floors measured in the same run, for a loaded machine: ``SELECT 1`` (one round trip), and
the descendants walk's SQL alone through the bare driver (psycopg's cursor, rows fetched
as tuples: no SQLAlchemy, no records, no artifact batch).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from crucible_model_registry import LineageCycleError, Registry
from crucible_model_registry.store._records import load_versions

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FAMILY = 2000
CHAIN_A = range(0, 100)
CHAIN_B = range(100, 300)
FAN_ROOT = 300
FAN_HUBS = range(301, 311)
FAN_LEAVES = range(311, 1301)
BRANCHES = range(1301, FAMILY)
DEEP = CHAIN_B[50]  # B[50]: 50 edges below B[0]
WIDE_HUBS = 100
WIDE_LEAVES = 99  # per hub: 100 + 100 * 99 = 10,000 descendants of the wide root
WIDE_MODEL = "wide-fan"
ATTACH = CHAIN_A[50]
CYCLE_TARGET = CHAIN_A[5]  # an ancestor of B[50] through the merge into B[5]


# --------------------------------------------------------------------------- the graph


def family_edges(seed: int = 7) -> list[tuple[int, int, str]]:
    """(parent position, child position, relationship) of one family, parents first."""
    rng = random.Random(seed)
    edges: list[tuple[int, int, str]] = []
    labels = ["fine_tuned_from", "dpo_trained_from", "rl_trained_from"]
    for i in CHAIN_A[1:]:
        edges.append((i - 1, i, labels[i % 3]))
    for k, i in enumerate(CHAIN_B):
        if k:
            edges.append((i - 1, i, labels[k % 3]))
        if k % 10 == 5:
            edges.append((CHAIN_A[k % len(CHAIN_A)], i, "merged_from"))
    for hub in FAN_HUBS:
        edges.append((FAN_ROOT, hub, "fine_tuned_from"))
    for k, leaf in enumerate(FAN_LEAVES):
        hub = FAN_HUBS[k // 99]
        edges.append((hub, leaf, rng.choice(["quantized_from", "adapter_of"])))
        if k % 10 == 0:
            other = FAN_HUBS[(k // 99 + 1) % len(FAN_HUBS)]
            edges.append((other, leaf, "merged_from"))
    eligible = [*CHAIN_A, *CHAIN_B]
    for i in BRANCHES:
        edges.append((rng.choice(eligible), i, rng.choice(["quantized_from", "distilled_from"])))
        eligible.append(i)
    return edges


def admin_engine(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT")


def database_url(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def database_exists(admin: Engine, name: str) -> bool:
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        return found.first() is not None


def drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def load(url: str, families: int) -> float:
    """Create the schema and load ``families`` families; returns the seconds it took."""
    started = time.perf_counter()
    registry = Registry.from_url(url)
    registry.migrate()
    engine = registry.engine
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cmr_models (id, name, tags, metadata, version_seq, created_at, "
                "updated_at) SELECT k + 1, 'family-' || k, '[]', '{}', 0, now(), now() "
                "FROM generate_series(0, :last) AS k"
            ),
            {"last": families - 1},
        )
        conn.execute(
            text(
                "INSERT INTO cmr_model_versions (id, model_id, version, stage, recipe, "
                "base_model, config_hash, training_config, metrics, tags, created_at, "
                "updated_at) "
                "SELECT k * :size + p + 1, k + 1, p::text, 'experiment', 'sft', "
                "'org/base-' || (k % 20), lpad(to_hex(k * :size + p + 1), 64, '0'), "
                "'{}', '{}', '[]', now(), now() "
                "FROM generate_series(0, :last) AS k, generate_series(0, :size - 1) AS p"
            ),
            {"last": families - 1, "size": FAMILY},
        )
        conn.execute(text("CREATE TEMP TABLE family_edge (src int, dst int, rel text)"))
        conn.execute(
            text("INSERT INTO family_edge VALUES (:s, :d, :r)"),
            [{"s": s, "d": d, "r": r} for s, d, r in family_edges()],
        )
        conn.execute(
            text(
                "INSERT INTO cmr_lineage_edges (source_version_id, target_version_id, "
                "relationship, metadata, created_at) "
                "SELECT k * :size + src + 1, k * :size + dst + 1, rel, '{}', now() "
                "FROM generate_series(0, :last) AS k, family_edge ORDER BY k, dst"
            ),
            {"last": families - 1, "size": FAMILY},
        )
        for table in ("cmr_models", "cmr_model_versions"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    registry.close()
    return time.perf_counter() - started


def add_wide_fan(url: str) -> int:
    """Load the wide fan W once (a database kept from an older run gains it); its root's id."""
    registry = Registry.from_url(url)
    with registry.engine.begin() as conn:
        found = conn.execute(
            text(
                "SELECT min(v.id) FROM cmr_model_versions v JOIN cmr_models m "
                "ON m.id = v.model_id WHERE m.name = :name"
            ),
            {"name": WIDE_MODEL},
        ).scalar()
        if found is None:
            size = 1 + WIDE_HUBS * (1 + WIDE_LEAVES)
            model = conn.execute(
                text(
                    "INSERT INTO cmr_models (name, tags, metadata, version_seq, created_at, "
                    "updated_at) VALUES (:name, '[]', '{}', 0, now(), now()) RETURNING id"
                ),
                {"name": WIDE_MODEL},
            ).scalar_one()
            # Position p: 0 is the root, 1..100 the hubs, the rest leaves (hub = 1 + k // 99).
            found = conn.execute(
                text(
                    "WITH v AS (INSERT INTO cmr_model_versions (model_id, version, stage, "
                    "recipe, base_model, config_hash, training_config, metrics, tags, "
                    "created_at, updated_at) SELECT :model, p::text, 'experiment', 'sft', "
                    "'org/wide', md5('wide' || p) || md5('fan' || p), '{}', '{}', '[]', "
                    "now(), now() FROM generate_series(0, :size - 1) AS p RETURNING id, "
                    "version::int AS p) SELECT min(id) FROM v"
                ),
                {"model": model, "size": size},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO cmr_lineage_edges (source_version_id, target_version_id, "
                    "relationship, metadata, created_at) "
                    "SELECT :root + CASE WHEN p <= :hubs THEN 0 "
                    "ELSE 1 + (p - :hubs - 1) / :leaves END, :root + p, "
                    "'fine_tuned_from', '{}', now() FROM generate_series(1, :size - 1) AS p"
                ),
                {"root": found, "hubs": WIDE_HUBS, "leaves": WIDE_LEAVES, "size": size},
            )
    with registry.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    registry.close()
    return int(found)


# --------------------------------------------------------------------------- timing


def version_id(family: int, position: int) -> int:
    return family * FAMILY + position + 1


def timed(call: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p50_p95(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def naive_ancestors(registry: Registry, start: int) -> int:
    """The original design: read every edge, walk in Python, then load what was found."""
    with registry.engine.connect() as conn:
        parents: dict[int, list[int]] = {}
        rows = conn.execute(
            text("SELECT source_version_id, target_version_id FROM cmr_lineage_edges")
        )
        for source, target in rows:
            parents.setdefault(target, []).append(source)
        seen = {start}
        order = []
        queue = deque([start])
        while queue:
            for parent in parents.get(queue.popleft(), ()):
                if parent not in seen:
                    seen.add(parent)
                    order.append(parent)
                    queue.append(parent)
        return len(load_versions(conn, order))


def raw_walk(registry: Registry, start: int) -> int:
    """The floor under get_descendants: its walk's SQL through the bare driver cursor."""
    from crucible_model_registry.store import lineage

    compiled = lineage._hits_statement("down", limited=False).compile(
        dialect=registry.engine.dialect
    )
    connection = registry.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(lineage._PLANNER_SETTINGS)
        cursor.execute(str(compiled), {**compiled.params, "start": start})
        count = len(cursor.fetchall())
        connection.commit()
        return count
    finally:
        connection.close()


def measure(url: str, families: int, runs: int, naive_runs: int) -> dict[str, list[float]]:
    wide_root = add_wide_fan(url)
    registry = Registry.from_url(url)
    with registry.engine.begin() as conn:  # edges added by an earlier run (--keep)
        loaded = families * len(family_edges())
        conn.execute(
            text("DELETE FROM cmr_lineage_edges WHERE id > :n AND target_version_id < :w"),
            {"n": loaded, "w": wide_root},
        )
    rng = random.Random(11)

    def pick() -> int:
        return rng.randrange(families)

    found = registry.get_ancestors(version_id(0, DEEP), with_distance=True)
    assert len(found) == 96, len(found)
    assert len(registry.get_descendants(version_id(0, FAN_ROOT))) == 1000
    assert len(registry.get_descendants(wide_root)) == WIDE_HUBS * (1 + WIDE_LEAVES)
    graph = registry.get_lineage(version_id(0, FAN_ROOT))
    assert (len(graph.versions), len(graph.edges)) == (1001, 1099), graph

    results: dict[str, list[float]] = {}
    with registry.engine.connect() as conn:
        results["floor: SELECT 1 round trip"] = timed(
            lambda: conn.exec_driver_sql("SELECT 1").all(), runs
        )
    results["floor: descendants SQL, bare driver"] = timed(
        lambda: raw_walk(registry, version_id(pick(), FAN_ROOT)), runs
    )
    for _ in range(20):  # warm the pool, the statement caches and the buffers
        registry.get_ancestors(version_id(pick(), DEEP))
        registry.get_descendants(version_id(pick(), FAN_ROOT))
    results["get_ancestors (50 deep, 96)"] = timed(
        lambda: registry.get_ancestors(version_id(pick(), DEEP)), runs
    )
    results["get_descendants (1,000)"] = timed(
        lambda: registry.get_descendants(version_id(pick(), FAN_ROOT)), runs
    )
    results["get_descendants (10,000)"] = timed(
        lambda: registry.get_descendants(wide_root), max(5, runs // 10)
    )
    results["get_lineage (1,001 versions)"] = timed(
        lambda: registry.get_lineage(version_id(pick(), FAN_ROOT)), runs
    )
    graphs = [registry.get_lineage(version_id(pick(), FAN_ROOT)) for _ in range(5)]

    def render(how: str) -> Callable[[], object]:
        def call() -> object:
            graph = graphs[rng.randrange(5)]
            return graph.to_dot() if how == "dot" else graph.to_mermaid()

        return call

    results["  to_dot() of it"] = timed(render("dot"), runs)
    results["  to_mermaid() of it"] = timed(render("mermaid"), runs)
    results["would_create_cycle"] = timed(
        lambda: registry.would_create_cycle(
            version_id(pick(), ATTACH), version_id(pick(), FAN_ROOT)
        ),
        runs,
    )

    # Accepted edges: A[50] of one family becomes a parent of a chain-B version of another
    # family, a different pair every time. The check walks A[50]'s 50 ancestors (A versions
    # never gain parents here) without finding the child.
    pairs: set[tuple[int, int, int]] = set()
    while len(pairs) < runs:
        a, b = pick(), pick()
        if a != b:
            pairs.add((a, b, rng.choice(CHAIN_B)))
    queue = iter(sorted(pairs))

    def attach() -> None:
        a, b, position = next(queue)
        registry.add_lineage(version_id(a, ATTACH), version_id(b, position), "merge")

    results["add_lineage (accepted)"] = timed(attach, runs)

    def refuse() -> None:
        family = pick()
        try:
            registry.add_lineage(version_id(family, DEEP), version_id(family, CYCLE_TARGET))
        except LineageCycleError:
            return
        raise AssertionError("the cycle was not refused")

    results["add_lineage (refused cycle)"] = timed(refuse, runs)
    results["naive: all edges + BFS (ancestors)"] = timed(
        lambda: naive_ancestors(registry, version_id(pick(), DEEP)), naive_runs
    )
    registry.close()
    return results


def explain(url: str) -> None:
    registry = Registry.from_url(url)
    from crucible_model_registry.store import lineage

    statement = lineage._hits_statement("up", limited=False)
    compiled = statement.compile(dialect=registry.engine.dialect)
    params = {**compiled.params, "start": version_id(0, DEEP)}
    with registry.engine.connect() as conn:
        conn.exec_driver_sql(lineage._PLANNER_SETTINGS)
        for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", params):
            print("   ", row[0])
    registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--naive-runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the databases for next time")
    parser.add_argument("--explain", action="store_true", help="print the ancestors plan")
    args = parser.parse_args()

    # A plain SIGTERM would skip the `finally` that drops the databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    admin = admin_engine(args.url)
    sizes = {"large": args.versions // FAMILY, "small": max(2, args.versions // FAMILY // 100)}
    names = {label: f"cmr_bench_lineage_{label}" for label in sizes}
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for label, families in sizes.items():
            url = database_url(args.url, names[label])
            if not (args.keep and database_exists(admin, names[label])):
                drop_database(admin, names[label])
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{names[label]}"'))
                seconds = load(url, families)
                print(
                    f"loaded {label}: {families * FAMILY:,} versions, "
                    f"{families * len(family_edges()):,} edges in {seconds:.0f} s",
                    flush=True,
                )
            if args.explain:
                print(f"EXPLAIN ANALYZE get_ancestors, {label}:")
                explain(url)
            results[label] = measure(url, families, args.runs, args.naive_runs)
    finally:
        if not args.keep:
            for name in names.values():
                drop_database(admin, name)
        admin.dispose()

    large, small = results["large"], results["small"]
    loadavg = os.getloadavg()
    header = (
        f"{'operation':<38} {'large p50':>10} {'p95':>8} {'small p50':>10} {'p95':>8} {'ratio':>6}"
    )
    print()
    print(
        f"large: {sizes['large'] * FAMILY:,} versions; small: {sizes['small'] * FAMILY:,}; "
        f"{args.runs} runs (10,000 descendants: {max(5, args.runs // 10)}, naive: "
        f"{args.naive_runs}); times in ms; load average {loadavg[0]:.2f} "
        f"{loadavg[1]:.2f} {loadavg[2]:.2f}; both databases also hold the wide fan "
        "(10,001 versions)"
    )
    print(header)
    print("-" * len(header))
    for op in large:
        l50, l95 = p50_p95(large[op])
        s50, s95 = p50_p95(small[op])
        print(f"{op:<38} {l50:>10.2f} {l95:>8.2f} {s50:>10.2f} {s95:>8.2f} {l50 / s50:>6.2f}")
    floor = statistics.median(large["floor: descendants SQL, bare driver"])
    for op in ("get_descendants (1,000)", "get_lineage (1,001 versions)"):
        print(f"{op} on the large graph: {statistics.median(large[op]) / floor:.2f}x the floor")
    cte = statistics.median(large["get_ancestors (50 deep, 96)"])
    naive = statistics.median(large["naive: all edges + BFS (ancestors)"])
    print()
    print(
        f"load-all-edges-then-BFS vs WITH RECURSIVE, ancestors on the large graph: "
        f"{naive:.0f} ms / {cte:.2f} ms = {naive / cte:,.0f}x"
    )


if __name__ == "__main__":
    main()
