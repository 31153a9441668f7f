"""Lineage through the public API (API.md §5), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import math
from datetime import timedelta

import pytest
from sqlalchemy import select

import crucible_model_registry as cmr
from crucible_model_registry import (
    LineageCycleError,
    LineageGraph,
    LineageHit,
    ModelVersion,
    NotFoundError,
    Registry,
    Relationship,
    ValidationError,
)
from crucible_model_registry.registry import VersionLike
from crucible_model_registry.store.tables import EDGES

BASE = "meta-llama/Llama-3.1-8B"
_configs = itertools.count()


def _register(
    registry: Registry,
    model: str,
    version: str,
    parents: list[ModelVersion] | None = None,
    lineage_type: str | None = None,
    base_model: str = BASE,
) -> ModelVersion:
    parent_refs: list[VersionLike] = list(parents or [])
    return registry.register(
        model_name=model,
        version=version,
        recipe="sl_basic",
        base_model=base_model,
        training_config={"run": next(_configs)},
        parents=parent_refs,
        lineage_type=lineage_type,
    )


def _edges(registry: Registry) -> list[tuple[int, int, str]]:
    with registry.engine.connect() as conn:
        rows = conn.execute(
            select(
                EDGES.c.source_version_id, EDGES.c.target_version_id, EDGES.c.relationship
            ).order_by(EDGES.c.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]


def _ids(versions: list[ModelVersion]) -> list[int]:
    return [v.id for v in versions]


@pytest.fixture
def diamond(registry: Registry) -> dict[str, ModelVersion]:
    """sft -> (dpo, rl) -> merge -> q4, plus a sibling of dpo made from sft."""
    sft = _register(registry, "llama-sft", "1.0")
    dpo = _register(registry, "llama-dpo", "1", [sft], "dpo")
    rl = _register(registry, "llama-rl", "1", [sft], "rl")
    merge = _register(registry, "llama-merge", "1", [dpo, rl])
    q4 = _register(registry, "llama-merge", "1-q4", [merge], "quantization")
    sibling = _register(registry, "llama-distill", "1", [sft], "distillation")
    return {"sft": sft, "dpo": dpo, "rl": rl, "merge": merge, "q4": q4, "sibling": sibling}


# --------------------------------------------------------------------------- traversal


def test_ancestors_are_nearest_first_without_duplicates(registry, diamond):
    found = registry.get_ancestors(diamond["q4"])
    assert _ids(found) == _ids([diamond["merge"], diamond["dpo"], diamond["rl"], diamond["sft"]])
    assert all(isinstance(v, ModelVersion) for v in found)


def test_descendants_are_nearest_first_without_duplicates(registry, diamond):
    found = registry.get_descendants(diamond["sft"])
    assert _ids(found) == _ids(
        [diamond["dpo"], diamond["rl"], diamond["sibling"], diamond["merge"], diamond["q4"]]
    )


def test_hits_carry_distance_and_the_relationship_that_reached_them(registry, diamond):
    hits = registry.get_ancestors(diamond["q4"], with_distance=True)
    assert all(isinstance(h, LineageHit) for h in hits)
    assert [(h.version.id, h.distance, h.relationship) for h in hits] == [
        (diamond["merge"].id, 1, Relationship.QUANTIZED_FROM),
        (diamond["dpo"].id, 2, Relationship.MERGED_FROM),
        (diamond["rl"].id, 2, Relationship.MERGED_FROM),
        (diamond["sft"].id, 3, Relationship.DPO_TRAINED_FROM),
    ]
    down = registry.get_descendants(diamond["sft"], with_distance=True)
    assert [(h.version.id, h.distance, h.relationship) for h in down] == [
        (diamond["dpo"].id, 1, Relationship.DPO_TRAINED_FROM),
        (diamond["rl"].id, 1, Relationship.RL_TRAINED_FROM),
        (diamond["sibling"].id, 1, Relationship.DISTILLED_FROM),
        (diamond["merge"].id, 2, Relationship.MERGED_FROM),
        (diamond["q4"].id, 3, Relationship.QUANTIZED_FROM),
    ]
    json.dumps(hits[0].to_dict())


def test_the_shortest_path_sets_the_distance(registry, diamond):
    # A skip edge sft -> q4 makes q4 a direct child of sft as well as a great-grandchild.
    registry.add_lineage(diamond["sft"], diamond["q4"], "adapter")
    hits = registry.get_descendants(diamond["sft"], with_distance=True)
    q4 = next(h for h in hits if h.version.id == diamond["q4"].id)
    assert (q4.distance, q4.relationship) == (1, Relationship.ADAPTER_OF)
    assert len(hits) == len({h.version.id for h in hits})


def test_max_depth_limits_the_walk(registry, diamond):
    assert _ids(registry.get_ancestors(diamond["q4"], max_depth=1)) == [diamond["merge"].id]
    assert _ids(registry.get_ancestors(diamond["q4"], 2)) == _ids(
        [diamond["merge"], diamond["dpo"], diamond["rl"]]
    )
    assert _ids(registry.get_descendants(diamond["sft"], max_depth=2)) == _ids(
        [diamond["dpo"], diamond["rl"], diamond["sibling"], diamond["merge"]]
    )
    assert registry.get_ancestors(diamond["sft"]) == []
    assert registry.get_descendants(diamond["q4"], max_depth=5) == []


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_a_bad_max_depth_is_refused(registry, diamond, bad):
    for call in (registry.get_ancestors, registry.get_descendants):
        with pytest.raises(ValidationError) as caught:
            call(diamond["q4"], max_depth=bad)
        assert set(caught.value.errors) == {"max_depth"}
    with pytest.raises(ValidationError) as caught:
        registry.get_lineage(diamond["q4"], max_depth=bad)
    assert set(caught.value.errors) == {"max_depth"}


def test_refs_and_ids_are_accepted(registry, diamond):
    by_ref = registry.get_ancestors("llama-merge@1-q4")
    by_id = registry.get_ancestors(diamond["q4"].id)
    assert _ids(by_ref) == _ids(by_id) == _ids(registry.get_ancestors(diamond["q4"]))
    assert _ids(registry.get_descendants("llama-sft@latest", max_depth=1)) == _ids(
        [diamond["dpo"], diamond["rl"], diamond["sibling"]]
    )


def test_traversal_of_an_unknown_version_is_not_found(registry, diamond):
    for call in (registry.get_ancestors, registry.get_descendants, registry.get_lineage):
        with pytest.raises(NotFoundError) as caught:
            call(999_999)
        assert caught.value.kind == "version"
    with pytest.raises(NotFoundError):
        registry.get_ancestors("llama-sft@9.9")


# --------------------------------------------------------------------------- add_lineage


def test_add_lineage_links_versions_of_different_models(registry):
    sft = _register(registry, "llama-sft", "1.0")
    dpo = _register(registry, "llama-dpo", "1")
    edge = registry.add_lineage(sft, dpo, "dpo", metadata={"beta": 0.1, "data": ["hh-rlhf"]})
    assert edge.source_version_id == sft.id
    assert edge.target_version_id == dpo.id
    assert edge.relationship is Relationship.DPO_TRAINED_FROM
    assert edge.metadata == {"beta": 0.1, "data": ["hh-rlhf"]}
    assert edge.created_at.tzinfo is not None
    assert _edges(registry) == [(sft.id, dpo.id, "dpo_trained_from")]
    assert _ids(registry.get_ancestors(dpo)) == [sft.id]


def test_add_lineage_defaults_to_fine_tuned_from_and_takes_refs(registry):
    _register(registry, "base-sft", "1")
    _register(registry, "child", "1")
    edge = registry.add_lineage("base-sft@1", "child@latest")
    assert edge.relationship is Relationship.FINE_TUNED_FROM
    assert edge.metadata == {}


def test_module_level_functions_use_the_default_registry(registry, diamond):
    # The `registry` fixture is also the configured default.
    other = _register(registry, "other", "1")
    edge = cmr.add_lineage(diamond["q4"], other, Relationship.QUANTIZED_FROM)
    assert _ids(cmr.get_descendants(diamond["merge"])) == [diamond["q4"].id, other.id]
    assert cmr.get_ancestors(other, with_distance=True)[0].relationship is edge.relationship
    assert cmr.would_create_cycle(other, diamond["sft"]) is True
    assert isinstance(cmr.get_lineage(other), LineageGraph)


def test_a_self_edge_is_a_cycle_and_writes_nothing(registry, diamond):
    before = _edges(registry)
    with pytest.raises(LineageCycleError) as caught:
        registry.add_lineage(diamond["dpo"], diamond["dpo"])
    assert (caught.value.parent_id, caught.value.child_id) == (diamond["dpo"].id,) * 2
    assert _edges(registry) == before


@pytest.mark.parametrize(
    ("parent", "child"), [("q4", "sft"), ("merge", "dpo"), ("dpo", "sft"), ("q4", "rl")]
)
def test_an_edge_closing_a_cycle_is_refused_and_writes_nothing(registry, diamond, parent, child):
    before = _edges(registry)
    assert registry.would_create_cycle(diamond[parent], diamond[child]) is True
    with pytest.raises(LineageCycleError) as caught:
        registry.add_lineage(diamond[parent], diamond[child])
    assert caught.value.parent_id == diamond[parent].id
    assert caught.value.child_id == diamond[child].id
    assert _edges(registry) == before


def test_an_unknown_version_is_not_found_and_writes_nothing(registry, diamond):
    before = _edges(registry)
    for parent, child in [(diamond["sft"], 999_999), (999_999, diamond["sft"])]:
        with pytest.raises(NotFoundError) as caught:
            registry.add_lineage(parent, child)
        assert (caught.value.kind, caught.value.ref) == ("version", 999_999)
    with pytest.raises(NotFoundError):
        registry.add_lineage("nope@1", diamond["sft"])
    assert _edges(registry) == before


def test_an_unknown_relationship_is_refused_and_writes_nothing(registry, diamond):
    before = _edges(registry)
    with pytest.raises(ValidationError) as caught:
        registry.add_lineage(diamond["q4"], diamond["sibling"], "grown_from")
    assert set(caught.value.errors) == {"relationship"}
    assert _edges(registry) == before


def test_a_duplicate_edge_is_refused_and_writes_nothing(registry, diamond):
    before = _edges(registry)
    with pytest.raises(ValidationError) as caught:
        registry.add_lineage(diamond["sft"], diamond["dpo"], "merge")
    assert set(caught.value.errors) == {"edge"}
    assert _edges(registry) == before


@pytest.mark.parametrize("bad", [["a"], "x", {"x": math.nan}, {"x": object()}, {1: "a"}])
def test_bad_edge_metadata_is_refused_and_writes_nothing(registry, diamond, bad):
    before = _edges(registry)
    with pytest.raises(ValidationError) as caught:
        registry.add_lineage(diamond["q4"], diamond["sibling"], metadata=bad)
    assert all(field.startswith("metadata") for field in caught.value.errors)
    assert _edges(registry) == before


def test_bad_refs_are_validation_errors(registry, diamond):
    with pytest.raises(ValidationError) as caught:
        registry.add_lineage("not a ref", diamond["sft"])
    assert set(caught.value.errors) == {"parent"}
    with pytest.raises(ValidationError) as caught:
        registry.would_create_cycle(diamond["sft"], 0)
    assert set(caught.value.errors) == {"child"}


def test_would_create_cycle_answers_without_writing(registry, diamond):
    before = _edges(registry)
    assert registry.would_create_cycle(diamond["sft"], diamond["sft"]) is True
    assert registry.would_create_cycle(diamond["q4"], diamond["dpo"]) is True
    assert registry.would_create_cycle(diamond["dpo"], diamond["q4"]) is False
    assert registry.would_create_cycle(diamond["sibling"], diamond["merge"]) is False
    assert registry.would_create_cycle(diamond["merge"], diamond["sibling"]) is False
    with pytest.raises(NotFoundError):
        registry.would_create_cycle(diamond["sft"], 999_999)
    assert _edges(registry) == before


def test_registering_with_parents_creates_the_same_edges(registry, diamond):
    assert {(s, t) for s, t, _ in _edges(registry)} == {
        (diamond["sft"].id, diamond["dpo"].id),
        (diamond["sft"].id, diamond["rl"].id),
        (diamond["dpo"].id, diamond["merge"].id),
        (diamond["rl"].id, diamond["merge"].id),
        (diamond["merge"].id, diamond["q4"].id),
        (diamond["sft"].id, diamond["sibling"].id),
    }


# --------------------------------------------------------------------------- get_lineage


def test_get_lineage_holds_ancestors_and_descendants_but_not_siblings(registry, diamond):
    graph = registry.get_lineage(diamond["dpo"])
    assert graph.focus.id == diamond["dpo"].id
    assert {v.id for v in graph.versions} == {diamond[k].id for k in ("sft", "dpo", "merge", "q4")}
    # rl is the merge's other parent, sibling is dpo's sibling: neither is dpo's lineage.
    assert {(e.source_version_id, e.target_version_id) for e in graph.edges} == {
        (diamond["sft"].id, diamond["dpo"].id),
        (diamond["dpo"].id, diamond["merge"].id),
        (diamond["merge"].id, diamond["q4"].id),
    }
    assert [h.version.id for h in graph.ancestors] == [diamond["sft"].id]
    assert [h.version.id for h in graph.descendants] == [diamond["merge"].id, diamond["q4"].id]


def test_get_lineage_shows_the_external_base_model_as_root(registry):
    sft = _register(registry, "llama-sft", "1")
    other = _register(registry, "mistral-sft", "1", base_model="mistralai/Mistral-7B")
    merged = _register(registry, "frankenmerge", "1", [sft, other], base_model="n/a")
    graph = registry.get_lineage(merged)
    assert graph.base_models == {BASE: [sft.id], "mistralai/Mistral-7B": [other.id]}
    assert _ids(graph.roots) == [sft.id, other.id]
    data = graph.to_dict()
    json.dumps(data)
    bases = {n["name"]: n["id"] for n in data["nodes"] if n["kind"] == "base_model"}
    assert set(bases) == {BASE, "mistralai/Mistral-7B"}
    assert {"source": bases[BASE], "target": f"v{sft.id}", "relationship": "base_model"} in (
        data["edges"]
    )
    versions = {n["version_id"]: n for n in data["nodes"] if n["kind"] == "version"}
    assert versions[merged.id]["role"] == "focus"
    assert (versions[sft.id]["role"], versions[sft.id]["distance"]) == ("ancestor", 1)
    assert data["focus"] == f"v{merged.id}"


def test_get_lineage_of_a_lone_version(registry):
    lone = _register(registry, "lone", "1")
    graph = registry.get_lineage(lone)
    assert graph.versions == [lone]
    assert graph.edges == ()
    assert graph.base_models == {BASE: [lone.id]}
    assert "(none)" in graph.to_tree("down")


def test_get_lineage_direction_and_depth(registry, diamond):
    up = registry.get_lineage(diamond["merge"], direction="up")
    assert {v.id for v in up.versions} == {diamond[k].id for k in ("merge", "dpo", "rl", "sft")}
    assert up.descendants == ()
    down = registry.get_lineage(diamond["sft"], direction="down", max_depth=1)
    assert {v.id for v in down.versions} == {diamond[k].id for k in ("sft", "dpo", "rl", "sibling")}
    assert len(down.edges) == 3
    with pytest.raises(ValidationError) as caught:
        registry.get_lineage(diamond["sft"], direction="sideways")
    assert set(caught.value.errors) == {"direction"}


def test_renderings_name_every_node_and_edge(registry, diamond):
    graph = registry.get_lineage(diamond["merge"])
    node_ids = {f"v{v.id}" for v in graph.versions}
    edges = [(f"v{e.source_version_id}", f"v{e.target_version_id}", e) for e in graph.edges]

    dot = graph.to_dot()
    assert dot.startswith("digraph lineage {")
    assert dot.rstrip().endswith("}")
    for node in node_ids:
        assert f"  {node} [label=" in dot
    for source, target, edge in edges:
        assert f'  {source} -> {target} [label="{edge.relationship.value}"];' in dot
    assert "  b0 -> v" in dot

    mermaid = graph.to_mermaid()
    assert mermaid.startswith("flowchart TD\n")
    for node in node_ids:
        assert f'  {node}["' in mermaid
    for source, target, edge in edges:
        assert f"  {source} -->|{edge.relationship.value}| {target}" in mermaid
    assert f"class v{diamond['merge'].id} focus;" in mermaid

    data = graph.to_dict()
    assert {n["id"] for n in data["nodes"] if n["kind"] == "version"} == node_ids
    assert json.loads(json.dumps(data)) == data


def test_renderings_escape_awkward_names(registry):
    weird = _register(registry, "weird", "1", base_model='org/"quoted"\\<model>#1')
    graph = registry.get_lineage(weird)
    assert 'label="org/\\"quoted\\"\\\\<model>#1"' in graph.to_dot()
    mermaid = graph.to_mermaid()
    assert '(["org/#quot;quoted#quot;\\#lt;model#gt;#35;1"])' in mermaid


def test_tree_draws_each_direction_and_marks_repeats(registry, diamond):
    graph = registry.get_lineage(diamond["q4"])
    up = graph.to_tree("up").splitlines()
    assert up[1] == f"{diamond['q4'].ref} (id {diamond['q4'].id}, experiment)"
    assert up[2].startswith("└── [quantized_from] llama-merge@1 ")
    # sft is reached through dpo and again through rl: expanded once, then referenced.
    sft_lines = [line for line in up if "llama-sft@1.0" in line]
    assert len(sft_lines) == 2
    assert sft_lines[1].endswith("(see above)")
    assert any(line.endswith(f"[base_model] {BASE}") for line in up)

    down = registry.get_lineage(diamond["sft"]).to_tree("down").splitlines()
    assert down[0].startswith("descendants")
    assert sum("llama-merge@1 " in line for line in down) == 2
    assert graph.to_tree() == graph.to_tree("up") + "\n" + graph.to_tree("down")


def test_tree_handles_deep_chains(registry):
    previous = _register(registry, "chain", "0")
    for i in range(1, 60):
        previous = _register(registry, "chain", str(i), [previous])
    tree = registry.get_lineage(previous, direction="up").to_tree("up")
    assert len(tree.splitlines()) == 2 + 60


def test_walks_return_whole_records_with_each_versions_own_artifacts(registry: Registry) -> None:
    # Issue 21 reads many versions at once: by column position, with one batched artifact
    # query (an array parameter on PostgreSQL). Each record must equal the one
    # get_version reads alone, artifacts in order, times in UTC.
    root = _register(registry, "batch", "root")
    children = []
    for i, count in enumerate([2, 0, 1, 3]):
        children.append(
            registry.register(
                model_name="batch",
                version=f"c{i}",
                recipe="sl_basic",
                base_model=BASE,
                training_config={"run": next(_configs), "nested": {"lr": [1e-4, i]}},
                metrics={"accuracy": 0.5 + i / 10},
                tags=[f"t{i}"] if i % 2 else [],
                description="child" if i else None,
                artifacts=[
                    {
                        "type": "checkpoint" if k % 2 else "tokenizer",
                        "storage_backend": "noop",
                        "storage_path": f"batch/c{i}/{k}",
                    }
                    for k in range(count)
                ],
                parents=[root],
            )
        )
    grandchild = _register(registry, "batch", "g", parents=[children[0], children[3]])
    expected = {v.id: registry.get_version(v.id) for v in [root, *children, grandchild]}

    found = registry.get_descendants(root)
    assert sorted(_ids(found)) == sorted(v.id for v in [*children, grandchild])
    assert all(v == expected[v.id] for v in found)
    assert [len(v.artifacts) for v in found[:4]] == [
        len(expected[v.id].artifacts) for v in found[:4]
    ]
    graph = registry.get_lineage(grandchild)
    assert all(v == expected[v.id] for v in graph.versions)
    assert all(v.created_at.utcoffset() == timedelta(0) for v in graph.versions)
    pairs = [(root.id, children[0].id), (root.id, children[3].id)]
    pairs += [(children[0].id, grandchild.id), (children[3].id, grandchild.id)]
    assert sorted((e.source_version_id, e.target_version_id) for e in graph.edges) == pairs
