"""`cmr demo` on a fresh CMR_HOME: it runs twice and leaves a registry others can read."""

from __future__ import annotations

from pathlib import Path

from tests.cli.runner import Runner


def test_demo_twice_then_query_and_lineage(cmr: Runner, home: Path):
    first = cmr("demo")
    assert first.code == 0, first.stderr
    assert first.stderr == ""
    for expected in ("Supervised fine-tune", "DPO", "merge", "production", "accuracy",
                     "ancestors", "[merged_from]", "meta-llama/Llama-3.1-8B"):  # fmt: skip
        assert expected in first.stdout, expected
    assert (home / "registry.db").exists()

    second = cmr("demo", "--json")
    assert second.code == 0, second.stderr
    doc = second.json()
    assert len(doc["versions"]) == 4  # nothing registered twice
    (winner,) = doc["query"]
    assert winner["stage"] == "production"
    assert winner["recipe"] == "merge"
    assert winner["metrics"]["accuracy"] >= 0.9

    production = cmr("query", "--stage", "production", "--json").json()
    assert [v["id"] for v in production] == [winner["id"]]
    lineage = cmr("lineage", f"demo-assistant@{winner['version']}", "--up", "--format", "json")
    assert lineage.code == 0, lineage.stderr
    relationships = {e["relationship"] for e in lineage.json()["edges"]}
    assert {"merged_from", "dpo_trained_from", "base_model"} <= relationships
    tree = cmr("lineage", "demo-assistant@champion")
    assert tree.code == 0
    assert "[dpo_trained_from]" in tree.stdout
