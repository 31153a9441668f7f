"""``cmr db check``: exit 0 on a sound registry, 1 naming every violation otherwise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.cli.runner import Runner

from crucible_model_registry import Registry


def _seed(registry: Registry) -> None:
    parent = registry.register(model_name="m", recipe="r", base_model="b", training_config={})
    registry.register(
        model_name="m",
        recipe="r",
        base_model="b",
        training_config={"n": 2},
        metrics={"accuracy": 0.9},
        parents=[parent],
    )


def test_db_check_passes_on_a_sound_registry(cmr: Runner, home_registry: Registry):
    _seed(home_registry)

    result = cmr("db", "check", "--json")

    assert result.code == 0, result.stderr
    assert result.json()["ok"] is True
    assert result.json()["violations"] == []


def test_db_check_exits_non_zero_naming_each_violation(
    cmr: Runner, home_registry: Registry, seeded_home: Path
):
    _seed(home_registry)
    with sqlite3.connect(seeded_home / "registry.db") as conn:
        conn.execute("UPDATE cmr_model_versions SET stage = 'production' WHERE version = '1'")
        conn.execute("UPDATE cmr_version_metrics SET value = 0.5")
        conn.execute("UPDATE cmr_models SET version_seq = 0")

    human = cmr("db", "check")
    as_json = cmr("db", "check", "--json")

    assert human.code == 1
    lines = human.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "stage_history",
        "metrics",
        "version_counter",
    ]
    assert as_json.code == 1
    assert [v["invariant"] for v in as_json.json()["violations"]] == [
        "stage_history",
        "metrics",
        "version_counter",
    ]
