"""``cmr audit``: the audit log as a table, as JSON, filtered; and through a server."""

from __future__ import annotations

import pytest
from tests.cli.runner import Runner, assert_user_error

import crucible_model_registry as cmr
from crucible_model_registry import Registry


@pytest.fixture
def written(home_registry: Registry) -> cmr.ModelVersion:
    reg = home_registry
    with cmr.acting_as("alice"):
        v = reg.register(model_name="m", recipe="sft", base_model="b", training_config={"a": 1})
    with cmr.acting_as("bob"):
        reg.promote(v, "staging", reason="eval passed")
    return v


def test_audit_json_lists_entries_newest_first(cmr: Runner, written: cmr.ModelVersion):
    result = cmr("audit", "--json")
    assert result.code == 0, result.stderr
    entries = result.json()
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("bob", "promote", written.ref),
        ("alice", "register", written.ref),
    ]
    assert entries[0]["details"]["reason"] == "eval passed"
    assert entries[0]["request_id"] is None
    assert set(entries[0]) == {
        "at", "actor", "action", "target", "details", "request_id", "outcome", "id",
    }  # fmt: skip


def test_audit_filters(cmr: Runner, written: cmr.ModelVersion):
    by_actor = cmr("audit", "--actor", "alice", "--json").json()
    assert [e["action"] for e in by_actor] == ["register"]
    by_action = cmr("audit", "--action", "promote", "--json").json()
    assert [e["actor"] for e in by_action] == ["bob"]
    assert len(cmr("audit", "--limit", "1", "--json").json()) == 1
    assert cmr("audit", "--since", "2999-01-01", "--json").json() == []
    assert len(cmr("audit", "--since", "2000-01-01T00:00:00Z", "--json").json()) == 2


def test_audit_table_shows_who_did_what(cmr: Runner, written: cmr.ModelVersion):
    result = cmr("audit")
    assert result.code == 0, result.stderr
    for text in ("alice", "bob", "register", "promote", written.ref, "eval passed"):
        assert text in result.stdout
    assert "no audit entries match" in cmr("audit", "--actor", "nobody").stdout


@pytest.mark.parametrize("args", [("--since", "yesterday"), ("--limit", "0"), ("--limit", "10001")])
def test_bad_options_are_user_errors(cmr: Runner, written: cmr.ModelVersion, args):
    assert_user_error(cmr("audit", *args))
