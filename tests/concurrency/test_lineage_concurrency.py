"""Concurrent add_lineage from separate processes: edges that close cycles in pairs and
triangles race each other, and the stored graph must stay acyclic."""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

import networkx as nx
import pytest
from sqlalchemy import select

from crucible_model_registry import LineageCycleError, ModelVersion, Registry
from crucible_model_registry.registry import VersionLike
from crucible_model_registry.store.tables import EDGES

WORKERS = 4
ROUNDS = 40
CHAIN = 30  # every raced version sits under a chain, so each cycle check walks ~30 edges

# Round r races over its own three versions a, b, c. Any two of the four edges are fine
# alone; a<->b and a->b->c->a are cycles, so at least one call per round must be refused.
# Worker i adds EDGES_PER_WORKER[i] as (parent, child) indexes into (a, b, c).
EDGES_PER_WORKER = [(0, 1), (1, 0), (1, 2), (2, 0)]


def _worker(url: str, rounds: list[tuple[int, int, int]], index: int, barrier: Any) -> list[Any]:
    """Runs in a spawned process with its own registry; returns one outcome per round."""
    registry = Registry.from_url(url)
    outcomes: list[Any] = []
    try:
        for versions in rounds:
            parent, child = (versions[i] for i in EDGES_PER_WORKER[index])
            barrier.wait(timeout=60)
            try:
                registry.add_lineage(parent, child, "merge")
                outcomes.append((parent, child, "added"))
            except LineageCycleError as exc:
                ids_match = (exc.parent_id, exc.child_id) == (parent, child)
                outcomes.append((parent, child, "cycle" if ids_match else repr(exc)))
            except Exception:
                outcomes.append((parent, child, traceback.format_exc()))
    finally:
        registry.close()
    return outcomes


def _register(registry: Registry, name: str, parents: list[ModelVersion], n: int) -> ModelVersion:
    return registry.register(
        model_name=name,
        recipe="race",
        base_model="org/base",
        training_config={"name": name, "n": n},
        parents=list[VersionLike](parents),
    )


@pytest.mark.slow
def test_concurrent_edges_never_close_a_cycle(registry: Registry, db_url: str) -> None:
    tail = _register(registry, "chain", [], 0)
    for n in range(1, CHAIN + 1):
        tail = _register(registry, "chain", [tail], n)
    rounds = [
        tuple(_register(registry, f"race-{r}", [tail], n).id for n in range(3))
        for r in range(ROUNDS)
    ]

    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(WORKERS)
    with context.Pool(WORKERS) as pool:
        pending = [pool.apply_async(_worker, (db_url, rounds, i, barrier)) for i in range(WORKERS)]
        results = [p.get(timeout=240) for p in pending]
    calls = [outcome for worker in results for outcome in worker]

    errors = [outcome for *_, outcome in calls if outcome not in ("added", "cycle")]
    assert errors == [], errors[0] if errors else None

    e = EDGES.c
    with registry.engine.connect() as conn:
        stored = {
            (r[0], r[1]) for r in conn.execute(select(e.source_version_id, e.target_version_id))
        }
    graph = nx.DiGraph(list(stored))
    assert nx.is_directed_acyclic_graph(graph)
    added = {(p, c) for p, c, outcome in calls if outcome == "added"}
    refused = {(p, c) for p, c, outcome in calls if outcome == "cycle"}
    assert added <= stored
    assert not refused & stored
    # Edges are never removed, so a refusal stays justified: the final graph has a path
    # child -> parent for every refused edge.
    assert all(nx.has_path(graph, c, p) for p, c in refused)
    for a, b, _ in rounds:
        assert not {(a, b), (b, a)} <= added
    assert len(refused) >= ROUNDS
