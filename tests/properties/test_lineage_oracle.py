"""Lineage against networkx as the oracle: random DAGs, random edge insertions (cycle-closing
ones included), and every traversal, depth limit and accept/reject decision compared."""

from __future__ import annotations

import itertools
import random
import uuid

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import or_, select

from crucible_model_registry import (
    LineageCycleError,
    LineageHit,
    Registry,
    Relationship,
    ValidationError,
)
from crucible_model_registry.registry import VersionLike
from crucible_model_registry.store.tables import EDGES

RELATIONSHIPS = list(Relationship)
# Each example registers its versions under a model of its own, so examples sharing one
# database never see each other's edges (no path leads from one example's versions to
# another's).
_models = itertools.count()
_RUN = uuid.uuid4().hex[:8]

EXAMPLES = 14
SAMPLED_VERSIONS = 8


def _insertions(rnd: random.Random, n: int, count: int) -> list[tuple[int, int]]:
    """Mostly forward edges (deep chains and fan-outs), some backward, self and repeated."""
    pairs: list[tuple[int, int]] = []
    for _ in range(count):
        kind = rnd.random()
        child = rnd.randrange(1, n)
        if kind < 0.55:
            # Near the child: long chains. Otherwise anywhere earlier: fan-outs and merges.
            if rnd.random() < 0.6:
                parent = max(0, child - rnd.choice([1, 1, 1, 2, 2, 3, 5]))
            else:
                parent = rnd.randrange(child)
            pairs.append((parent, child))
        elif kind < 0.9:
            pairs.append((child, rnd.randrange(child)))  # backward: may close a cycle
        elif kind < 0.95:
            pairs.append((child, child))
        elif pairs:
            pairs.append(rnd.choice(pairs))
    return pairs


def _distances(graph: nx.DiGraph[int], start: int, *, up: bool) -> dict[int, int]:
    view = graph.reverse(copy=False) if up else graph
    found: dict[int, int] = dict(nx.single_source_shortest_path_length(view, start))
    del found[start]
    return found


def _check_hits(graph: nx.DiGraph[int], start: int, hits: list[LineageHit], *, up: bool) -> None:
    expected = _distances(graph, start, up=up)
    got = {h.version.id: h.distance for h in hits}
    assert len(got) == len(hits), "a version came back twice"
    assert got == expected
    assert [h.distance for h in hits] == sorted(h.distance for h in hits), "not nearest first"
    for hit in hits:
        node, dist = hit.version.id, hit.distance
        # The label must be that of an edge on a shortest path, the one arriving at node.
        if up:
            options = {
                graph.edges[node, w]["rel"]
                for w in graph.successors(node)
                if (w == start and dist == 1) or expected.get(w) == dist - 1
            }
        else:
            options = {
                graph.edges[w, node]["rel"]
                for w in graph.predecessors(node)
                if (w == start and dist == 1) or expected.get(w) == dist - 1
            }
        assert hit.relationship in options


def _stored_edges(registry: Registry, ids: list[int]) -> set[tuple[int, int, str]]:
    e = EDGES.c
    with registry.engine.connect() as conn:
        rows = conn.execute(
            select(e.source_version_id, e.target_version_id, e.relationship).where(
                or_(e.source_version_id.in_(ids), e.target_version_id.in_(ids))
            )
        )
        return {(r[0], r[1], r[2]) for r in rows}


def check_random_dag(registry: Registry, n: int, edge_factor: float, rnd: random.Random) -> None:
    """Build a random DAG of ``n`` versions, try ``n * edge_factor`` insertions, compare."""
    model = f"dag-{_RUN}-{next(_models)}"
    graph: nx.DiGraph[int] = nx.DiGraph()
    ids: list[int] = []
    for i in range(n):
        # Some versions are registered with parents, the rest linked afterwards.
        parents = rnd.sample(ids, k=min(len(ids), rnd.choice([1, 1, 2]))) if ids else []
        if rnd.random() < 0.7:
            parents = []
        relationship = rnd.choice(RELATIONSHIPS)
        version = registry.register(
            model_name=model,
            version=str(i),
            recipe="r",
            base_model="org/base",
            training_config={"model": model, "i": i},
            parents=list[VersionLike](parents),
            lineage_type=relationship.value,
        )
        ids.append(version.id)
        graph.add_node(version.id)
        for parent in parents:
            graph.add_edge(parent, version.id, rel=relationship)

    for a, b in _insertions(rnd, n, int(n * edge_factor)):
        parent, child = ids[a], ids[b]
        closes = parent == child or nx.has_path(graph, child, parent)
        assert registry.would_create_cycle(parent, child) is closes
        relationship = rnd.choice(RELATIONSHIPS)
        if closes:
            with pytest.raises(LineageCycleError) as caught:
                registry.add_lineage(parent, child, relationship)
            assert (caught.value.parent_id, caught.value.child_id) == (parent, child)
        elif graph.has_edge(parent, child):
            with pytest.raises(ValidationError) as refused:
                registry.add_lineage(parent, child, relationship)
            assert set(refused.value.errors) == {"edge"}
        else:
            edge = registry.add_lineage(parent, child, relationship)
            assert (edge.source_version_id, edge.target_version_id) == (parent, child)
            graph.add_edge(parent, child, rel=relationship)

    assert nx.is_directed_acyclic_graph(graph)
    assert _stored_edges(registry, ids) == {
        (s, t, d["rel"].value) for s, t, d in graph.edges(data=True)
    }
    for start in rnd.sample(ids, k=min(n, SAMPLED_VERSIONS)):
        up = registry.get_ancestors(start, with_distance=True)
        down = registry.get_descendants(start, with_distance=True)
        _check_hits(graph, start, up, up=True)
        _check_hits(graph, start, down, up=False)
        depth = rnd.randint(1, 4)
        limited_up = {v.id for v in registry.get_ancestors(start, max_depth=depth)}
        limited_down = {v.id for v in registry.get_descendants(start, max_depth=depth)}
        assert limited_up == {v for v, d in _distances(graph, start, up=True).items() if d <= depth}
        assert limited_down == {
            v for v, d in _distances(graph, start, up=False).items() if d <= depth
        }
    start = rnd.choice(ids)
    lineage = registry.get_lineage(start)
    members = {start} | nx.ancestors(graph, start) | nx.descendants(graph, start)
    assert {v.id for v in lineage.versions} == members
    assert {(e.source_version_id, e.target_version_id) for e in lineage.edges} == set(
        graph.subgraph(members).edges
    )


@pytest.mark.slow
def test_lineage_matches_networkx(registry: Registry) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        n=st.integers(min_value=2, max_value=300),
        edge_factor=st.floats(min_value=0.5, max_value=2.0),
        seed=st.integers(min_value=0, max_value=2**32 - 1),
    )
    def run(n: int, edge_factor: float, seed: int) -> None:
        # A seeded Random rather than st.randoms(): a few hundred versions need thousands
        # of choices, more than one Hypothesis example holds; n still shrinks.
        check_random_dag(registry, n, edge_factor, random.Random(seed))

    run()
