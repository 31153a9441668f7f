"""``cmr query``/``list`` filters and ordering, and ``cmr lineage`` in every format."""

from __future__ import annotations

from typing import Any

import pytest
from tests.cli.runner import Runner, assert_user_error

from crucible_model_registry import Registry


@pytest.fixture
def family(home_registry: Registry):
    """base -> dpo, base -> sft2, (dpo, sft2) -> merged; two production versions."""
    reg = home_registry
    common: dict[str, Any] = {"base_model": "meta-llama/Llama-3.1-8B"}
    base = reg.register(model_name="m", recipe="sft", training_config={"lr": 1},
                        metrics={"accuracy": 0.80}, tags=["sft"], **common)  # fmt: skip
    dpo = reg.register(model_name="m", recipe="dpo", training_config={"beta": 0.1},
                       metrics={"accuracy": 0.92}, parents=[base], lineage_type="dpo",
                       **common)  # fmt: skip
    sft2 = reg.register(model_name="other", recipe="sft", training_config={"lr": 2},
                        metrics={"accuracy": 0.95}, tags=["sft"], **common)  # fmt: skip
    merged = reg.register(model_name="m", recipe="merge", training_config={"t": 0.5},
                          parents=[dpo, sft2], base_model="merged")  # fmt: skip
    reg.promote(dpo, "production")
    reg.promote(sft2, "production")
    return {"base": base, "dpo": dpo, "sft2": sft2, "merged": merged}


def _ids(result) -> list[int]:
    assert result.code == 0, result.stderr
    return [v["id"] for v in result.json()]


def test_query_filters_combine_with_and(cmr: Runner, family):
    ids = {name: v.id for name, v in family.items()}
    assert _ids(cmr("query", "--json")) == sorted(ids.values())
    assert _ids(cmr("query", "--stage", "production", "--recipe", "dpo", "--json")) == [ids["dpo"]]
    assert _ids(cmr("list", "--metric", "accuracy>=0.9", "--json")) == [ids["dpo"], ids["sft2"]]
    assert _ids(
        cmr("query", "--metric", "accuracy>=0.9", "--metric", "accuracy<0.93", "--json")
    ) == [ids["dpo"]]
    assert _ids(cmr("query", "--model", "m", "--tag", "sft", "--json")) == [ids["base"]]
    assert _ids(cmr("query", "--base-model", "merged", "--json")) == [ids["merged"]]
    assert _ids(cmr("query", "-s", "production", "-s", "experiment", "--recipe", "sft",
                    "--json")) == [ids["base"], ids["sft2"]]  # fmt: skip
    assert _ids(cmr("query", "--descendant-of", family["base"].ref, "--json")) == [
        ids["dpo"],
        ids["merged"],
    ]
    assert _ids(cmr("query", "--ancestor-of", str(ids["merged"]), "--json")) == [
        ids["base"],
        ids["dpo"],
        ids["sft2"],
    ]


def test_query_order_and_limit(cmr: Runner, family):
    ids = {name: v.id for name, v in family.items()}
    by_accuracy = cmr("query", "--order-by", "metric:accuracy", "--desc", "--json")
    assert _ids(by_accuracy) == [ids["sft2"], ids["dpo"], ids["base"], ids["merged"]]
    newest_two = cmr("-q", "query", "--desc", "--limit", "2")
    assert newest_two.stdout.split() == [str(ids["merged"]), str(ids["sft2"])]
    by_name = cmr("query", "--order-by", "model_name", "--limit", "1", "--json")
    assert _ids(by_name) == [ids["base"]]


def test_query_for_people(cmr: Runner, family):
    result = cmr("query", "--stage", "production")
    assert result.code == 0
    assert "m@2" in result.stdout
    assert "other@1" in result.stdout
    assert "No versions match" in cmr("query", "--recipe", "nothing").stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--metric", "accuracy"], id="no-operator"),
        pytest.param(["--metric", "accuracy>=high"], id="not-a-number"),
        pytest.param(["--order-by", "colour"], id="unknown-order-field"),
        pytest.param(["--descendant-of", "nosuch@1"], id="unknown-lineage-ref"),
        pytest.param(["--limit", "-1"], id="negative-limit"),
    ],
)
def test_query_rejects_bad_filters(cmr: Runner, family, args):
    assert_user_error(cmr("query", *args))


def test_query_on_an_empty_registry(cmr: Runner, seeded_home):
    result = cmr("query", "--json")
    assert result.code == 0
    assert result.json() == []
    assert_user_error(cmr("list", "--stage", "heaven"))


def test_lineage_tree_both_ways(cmr: Runner, family):
    result = cmr("lineage", family["dpo"].ref)
    assert result.code == 0, result.stderr
    tree = result.stdout
    assert "ancestors" in tree
    assert "descendants" in tree
    assert "[dpo_trained_from] m@1" in tree
    assert "[merged_from] m@3" in tree
    assert "meta-llama/Llama-3.1-8B" in tree

    up = cmr("lineage", family["merged"].ref, "--up").stdout
    assert "descendants" not in up
    assert "other@1" in up
    down = cmr("lineage", family["base"].ref, "--down", "--depth", "1").stdout
    assert "m@2" in down
    assert "m@3" not in down


def test_lineage_as_json_dot_and_mermaid(cmr: Runner, family):
    merged = family["merged"]
    doc = cmr("lineage", merged.ref, "--format", "json").json()
    assert doc["focus"] == f"v{merged.id}"
    edges = {(e["source"], e["target"], e["relationship"]) for e in doc["edges"]}
    assert (f"v{family['dpo'].id}", f"v{merged.id}", "merged_from") in edges
    assert cmr("--json", "lineage", merged.ref).json() == doc

    dot = cmr("lineage", merged.ref, "-f", "dot").stdout
    assert dot.startswith("digraph lineage {")
    assert f"v{family['sft2'].id} -> v{merged.id}" in dot
    mermaid = cmr("lineage", merged.ref, "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart TD")
    assert f"v{family['dpo'].id} -->|merged_from| v{merged.id}" in mermaid


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["nosuch@1"], id="unknown-version"),
        pytest.param(["m@1", "--up", "--down"], id="two-directions"),
        pytest.param(["m@1", "--depth", "0"], id="depth-zero"),
        pytest.param(["m@1", "--format", "png"], id="unknown-format"),
    ],
)
def test_lineage_rejects_bad_input(cmr: Runner, family, args):
    assert_user_error(cmr("lineage", *args))
