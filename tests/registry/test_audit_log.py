"""The audit log (issue 16, item 5): one entry per write, in the write's own transaction.

Every test runs on SQLite, PostgreSQL and through a server (the ``registry`` fixture). The
expected actor is the one the stage history records for the same call, so the tests hold
whether the server takes the actor from the client's header or from its token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from tests.servers.registry_server import install_token

import crucible_model_registry as cmr
from crucible_model_registry import AuditEntry, Registry
from crucible_model_registry.domain.access import new_token_secret
from crucible_model_registry.registry import RemoteRegistry
from crucible_model_registry.store.tables import metadata

MODEL = "audited"


def _register(registry: Registry, i: int = 0, **fields: Any) -> cmr.ModelVersion:
    return registry.register(
        model_name=fields.pop("model_name", MODEL),
        recipe="sft",
        base_model="org/base",
        training_config={"i": i},
        **fields,
    )


@contextlib.contextmanager
def acting(registry: Registry, actor: str) -> Iterator[Registry]:
    """A registry whose writes are ``actor``'s: ``acting_as`` in the library, a token of
    that name at a server (which ignores what the client says)."""
    if not isinstance(registry, RemoteRegistry):
        with cmr.acting_as(actor):
            yield registry
        return
    secret = new_token_secret()
    url = registry.engine.url.render_as_string(hide_password=False)
    assert install_token(url, actor, secret, role="admin")
    other = RemoteRegistry(registry.backend.describe(), token=secret)
    try:
        yield other
    finally:
        other.close()


def _newest_id(registry: Registry) -> int:
    newest = registry.audit_log(limit=1)
    return newest[0].id or 0 if newest else 0


@contextlib.contextmanager
def one_entry(registry: Registry) -> Iterator[list[AuditEntry]]:
    """The block must append exactly one entry; it is in the list afterwards."""
    before = _newest_id(registry)
    found: list[AuditEntry] = []
    yield found
    new = [e for e in registry.audit_log(limit=1000) if (e.id or 0) > before]
    assert len(new) == 1, new
    found.append(new[0])


def snapshot(registry: Registry) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table (the server's, for a remote registry)."""
    with registry.engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in conn.execute(select(table))), key=repr
            )
            for table in metadata.sorted_tables
        }


def _check_origin(registry: Registry, entry: AuditEntry, actor: str) -> None:
    assert entry.actor == actor
    assert entry.outcome == "ok"
    if isinstance(registry, RemoteRegistry):
        assert entry.request_id  # the server's request
    else:
        assert entry.request_id is None
    assert entry.at.tzinfo is not None


# --------------------------------------------------------------------------- each write


def test_register_appends_one_entry_with_the_historys_actor(registry: Registry) -> None:
    parent = _register(registry, 0)
    with acting(registry, "alice") as alice, one_entry(registry) as got:
        v = _register(
            alice,
            1,
            parents=[parent],
            artifacts=[{"type": "config", "storage_backend": "s3", "storage_path": "s3://b/c"}],
        )
    [entry] = got
    assert registry.stage_history(v)[0].actor == "alice"
    _check_origin(registry, entry, "alice")
    assert (entry.action, entry.target) == ("register", v.ref)
    assert entry.details == {
        "version_id": v.id,
        "config_hash": v.config_hash,
        "parents": [parent.id],
        "artifacts": [a.id for a in v.artifacts],
        "lineage_type": "fine_tuned_from",
    }


def test_register_by_name_and_explicit_version_record_the_same_details(registry: Registry) -> None:
    # PostgreSQL registers an auto-numbered version with id parents in one statement and
    # anything else in a transaction: both write the same entry.
    first = _register(registry, 0)
    with one_entry(registry) as got:
        v = _register(registry, 1, version="9.0", parents=[f"{MODEL}@1"])
    assert got[0].details == {
        "version_id": v.id,
        "config_hash": v.config_hash,
        "parents": [first.id],
        "artifacts": [],
        "lineage_type": "fine_tuned_from",
    }
    assert got[0].target == f"{MODEL}@9.0"


def test_metric_tag_and_model_changes_are_each_one_entry(registry: Registry) -> None:
    v = _register(registry, 0, metrics={"acc": 0.5}, tags=["a"])
    actor = registry.stage_history(v)[0].actor
    with one_entry(registry) as got:
        registry.update_metrics(v, {"acc": 0.9, "loss": 1.0})
    assert (got[0].action, got[0].target) == ("update_metrics", v.ref)
    assert got[0].details == {"metrics": {"acc": 0.9, "loss": 1.0}, "old": {"acc": 0.5}}
    _check_origin(registry, got[0], actor)

    with one_entry(registry) as got:
        registry.add_tags(v, ["a", "b"])
    assert (got[0].action, got[0].details) == ("add_tags", {"tags": ["b"]})
    with one_entry(registry) as got:
        registry.remove_tags(v, ["a", "zzz"])
    assert (got[0].action, got[0].details) == ("remove_tags", {"tags": ["a"]})

    with one_entry(registry) as got:
        registry.update_model(MODEL, description="d", tags=["team"])
    assert (got[0].action, got[0].target) == ("update_model", MODEL)
    assert got[0].details == {
        "description": {"old": None, "new": "d"},
        "tags": {"old": [], "new": ["team"]},
    }
    _check_origin(registry, got[0], actor)


def test_model_lifecycle_and_version_updates_are_each_one_entry(registry: Registry) -> None:
    # The writes MLflow's API needs: create, rename and delete a model, update a version.
    with one_entry(registry) as got:
        registry.create_model("lifecycle", description="d", tags=["t"], metadata={"k": 1})
    assert (got[0].action, got[0].target) == ("create_model", "lifecycle")
    assert got[0].details == {"description": "d", "tags": ["t"], "metadata": {"k": 1}}
    v = _register(registry, 0, model_name="lifecycle")
    with one_entry(registry) as got:
        registry.update_version(v, description="new", metadata_patch={"a": 1})
    assert (got[0].action, got[0].target) == ("update_version", v.ref)
    assert got[0].details == {
        "description": {"old": None, "new": "new"},
        "metadata": {"old": {}, "new": {"a": 1}},
    }
    with one_entry(registry) as got:
        registry.rename_model("lifecycle", "lifecycle-2")
    assert (got[0].action, got[0].target) == ("rename_model", "lifecycle")
    assert got[0].details == {"old": "lifecycle", "new": "lifecycle-2"}
    with one_entry(registry) as got:
        registry.delete_model("lifecycle-2")
    assert (got[0].action, got[0].target) == ("delete_model", "lifecycle-2")
    assert got[0].details == {"force": False, "versions": [v.version]}
    _check_origin(registry, got[0], registry.audit_log(limit=2)[1].actor)


def test_a_call_that_changes_nothing_appends_nothing(registry: Registry) -> None:
    v = _register(registry, 0, tags=["a"])
    registry.set_alias(v, "champion")
    before = snapshot(registry)
    registry.add_tags(v, ["a"])
    registry.remove_tags(v, ["absent"])
    registry.promote(v, "experiment")  # its stage already
    registry.set_alias(v, "champion")  # already there
    registry.set_promotion_policy(MODEL, None)  # it has none
    assert snapshot(registry) == before


def test_promote_records_the_stages_reason_and_archived_versions(registry: Registry) -> None:
    old = _register(registry, 0)
    registry.promote(old, "production")
    new = _register(registry, 1)
    with acting(registry, "release-bot") as bot, one_entry(registry) as got:
        bot.promote(new, "production", reason="better", archive_existing=True)
    [entry] = got
    assert registry.stage_history(new)[-1].actor == "release-bot"
    _check_origin(registry, entry, "release-bot")
    assert (entry.action, entry.target) == ("promote", new.ref)
    assert entry.details == {
        "version_id": new.id,
        "from_stage": "experiment",
        "to_stage": "production",
        "reason": "better",
        "archived": [old.id],
    }
    with one_entry(registry) as got:
        registry.promote(old, "staging")
    assert got[0].details["archived"] == []
    assert (got[0].details["from_stage"], got[0].details["reason"]) == ("archived", None)


def test_alias_moves_record_the_old_and_new_version(registry: Registry) -> None:
    a, b = _register(registry, 0), _register(registry, 1)
    with acting(registry, "carol") as carol, one_entry(registry) as got:
        carol.set_alias(a, "champion", reason="first")
    assert (got[0].action, got[0].target) == ("set_alias", f"{MODEL}@champion")
    assert got[0].details == {
        "alias": "champion",
        "old_version_id": None,
        "new_version_id": a.id,
        "reason": "first",
    }
    _check_origin(registry, got[0], registry.alias_history(MODEL)[-1].actor)
    assert got[0].actor == "carol"
    with one_entry(registry) as got:
        registry.set_alias(b, "champion")
    assert (got[0].details["old_version_id"], got[0].details["new_version_id"]) == (a.id, b.id)
    with one_entry(registry) as got:
        registry.delete_alias(MODEL, "champion", reason="retired")
    assert (got[0].action, got[0].target) == ("delete_alias", f"{MODEL}@champion")
    assert got[0].details == {
        "alias": "champion",
        "old_version_id": b.id,
        "new_version_id": None,
        "reason": "retired",
    }


def test_policy_changes_carry_the_old_and_the_new_policy(registry: Registry) -> None:
    _register(registry, 0)
    first = {"exclusive": ["production"]}
    second = {"gates": {"production": {"min_accuracy": 0.9}}}
    with acting(registry, "admin") as admin, one_entry(registry) as got:
        admin.set_promotion_policy(MODEL, first)
    assert (got[0].action, got[0].target, got[0].actor) == ("set_promotion_policy", MODEL, "admin")
    stored_first = cmr.PromotionPolicy.from_dict(first).to_dict()
    assert got[0].details == {"old": None, "new": stored_first}
    with one_entry(registry) as got:
        registry.set_promotion_policy(MODEL, second)
    stored_second = cmr.PromotionPolicy.from_dict(second).to_dict()
    assert got[0].details == {"old": stored_first, "new": stored_second}
    with one_entry(registry) as got:
        registry.set_promotion_policy(MODEL, None)
    assert got[0].details == {"old": stored_second, "new": None}
    # The policy history and the audit log agree.
    changes = registry.policy_history(MODEL)
    assert changes[0].actor == "admin"


def test_lineage_edges_are_audited_on_the_child(registry: Registry) -> None:
    parent, child = _register(registry, 0), _register(registry, 1)
    with one_entry(registry) as got:
        edge = registry.add_lineage(parent, child, relationship="quantization", metadata={"b": 4})
    assert (got[0].action, got[0].target) == ("add_lineage", child.ref)
    assert got[0].details == {
        "edge_id": edge.id,
        "parent": parent.ref,
        "parent_id": parent.id,
        "child_id": child.id,
        "relationship": "quantized_from",
    }


def test_uploads_deletions_and_garbage_collection_are_audited(
    registry: Registry, tmp_path: Path
) -> None:
    v = _register(registry, 0)
    actor = registry.stage_history(v)[0].actor
    (tmp_path / "w.bin").write_bytes(b"weights")
    with one_entry(registry) as got:
        artifact = registry.upload_artifact(v, "checkpoint", tmp_path / "w.bin")
    assert (got[0].action, got[0].target) == ("upload", v.ref)
    assert got[0].details == {
        "artifact_id": artifact.id,
        "type": "checkpoint",
        "storage_backend": artifact.storage_backend,
        "storage_path": artifact.storage_path,
        "checksum": artifact.checksum,
        "size_bytes": 7,
    }
    _check_origin(registry, got[0], actor)
    with one_entry(registry) as got:
        registry.delete_artifact(artifact)
    assert (got[0].action, got[0].target) == ("delete_artifact", v.ref)
    assert got[0].details["artifact_id"] == artifact.id

    # Bytes left behind by a deleted version are garbage; their removal is one entry.
    w = _register(registry, 1)
    kept = registry.upload_artifact(w, "checkpoint", tmp_path / "w.bin")
    with one_entry(registry) as got:
        registry.delete_version(w, force=True)
    assert (got[0].action, got[0].target) == ("delete_version", w.ref)
    assert got[0].details == {
        "version_id": w.id,
        "stage": "experiment",
        "force": True,
        "artifacts": [kept.id],
        "aliases": [],
    }
    with one_entry(registry) as got:
        report = registry.collect_garbage()
    assert got[0].action == "collect_garbage"
    assert got[0].details["removed"] == len(report.items) >= 1
    assert {i["path"] for i in got[0].details["items"]} == {i.path for i in report.items}
    _check_origin(registry, got[0], actor)
    before = _newest_id(registry)
    registry.collect_garbage()  # nothing left: no entry
    registry.collect_garbage(dry_run=True)
    assert _newest_id(registry) == before


def test_a_reference_url_with_a_password_is_not_logged(registry: Registry) -> None:
    url = "https://user:hunter2@example.com/weights.bin"
    v = _register(
        registry,
        0,
        artifacts=[{"type": "checkpoint", "storage_backend": "s3", "storage_path": url}],
    )
    with one_entry(registry) as got:
        registry.delete_artifact(v.artifacts[0], keep_bytes=True)
    assert "hunter2" not in repr(got[0])


# --------------------------------------------------------------------------- refused writes


def test_refused_writes_leave_no_entry_and_nothing_changed(registry: Registry) -> None:
    v = _register(registry, 0, metrics={"acc": 0.1})
    child = _register(registry, 1, parents=[v])
    registry.promote(v, "production")
    registry.set_promotion_policy(MODEL, {"gates": {"staging": {"min_accuracy": 0.9}}})
    before = snapshot(registry)

    with pytest.raises(cmr.DuplicateConfigError):
        _register(registry, 0)
    with pytest.raises(cmr.DuplicateVersionError):
        _register(registry, 7, version=child.version)
    with pytest.raises(cmr.NotFoundError):
        _register(registry, 8, parents=[f"{MODEL}@404"])
    with pytest.raises(cmr.PromotionDeniedError):
        registry.promote(child, "staging")
    with pytest.raises(cmr.ValidationError):
        registry.delete_version(v)  # in production, with a descendant
    with pytest.raises(cmr.ValidationError):
        registry.set_alias(v, child.version)  # a version string of the model
    with pytest.raises(cmr.ValidationError):
        registry.set_promotion_policy(MODEL, {"gates": {"nowhere": {}}})
    with pytest.raises(cmr.LineageCycleError):
        registry.add_lineage(child, v)
    with pytest.raises(cmr.NotFoundError):
        registry.delete_alias(MODEL, "none")
    with pytest.raises(cmr.NotFoundError):
        registry.update_metrics(f"{MODEL}@404", {"acc": 1.0})
    with pytest.raises(cmr.ValidationError):
        registry.update_metrics(v, {"acc": float("nan")})
    # A duplicate returned instead of registered is no write either.
    assert _register(registry, 0, on_duplicate="return") == registry.get_version(v.id)
    assert snapshot(registry) == before


# --------------------------------------------------------------------------- reading


def test_filters_limit_and_newest_first(registry: Registry) -> None:
    with acting(registry, "alice") as alice:
        a = _register(alice, 0)
    start = datetime.now(UTC)
    with acting(registry, "bob") as bob:
        b = _register(bob, 1)
        bob.promote(b, "staging")
    with acting(registry, "alice") as alice:
        alice.promote(a, "staging")

    log = registry.audit_log()
    assert [(e.actor, e.action, e.target) for e in log] == [
        ("alice", "promote", a.ref),
        ("bob", "promote", b.ref),
        ("bob", "register", b.ref),
        ("alice", "register", a.ref),
    ]
    assert [e.id for e in log] == sorted((e.id for e in log), reverse=True)
    assert [e.target for e in registry.audit_log(actor="alice")] == [a.ref, a.ref]
    assert [e.actor for e in registry.audit_log(action="register")] == ["bob", "alice"]
    assert [e.actor for e in registry.audit_log(actor="bob", action="promote")] == ["bob"]
    assert [e.action for e in registry.audit_log(since=start)] == ["promote"] * 2 + ["register"]
    assert registry.audit_log(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert registry.audit_log(limit=2) == log[:2]
    assert registry.audit_log(actor="nobody") == []


@pytest.mark.parametrize("limit", [0, -1, 10_001, True, 2.5])
def test_a_bad_limit_is_refused(registry: Registry, limit: Any) -> None:
    with pytest.raises(cmr.ValidationError) as refused:
        registry.audit_log(limit=limit)
    assert "limit" in refused.value.errors


def test_a_naive_since_is_refused(registry: Registry) -> None:
    with pytest.raises(cmr.ValidationError) as refused:
        registry.audit_log(since=datetime(2026, 1, 1))
    assert "since" in refused.value.errors


def test_the_log_is_append_only_from_the_public_api(registry: Registry) -> None:
    # The registry offers reading only; there is no method that changes or removes an entry.
    audit_methods = [name for name in dir(registry) if "audit" in name and not name.startswith("_")]
    assert audit_methods == ["audit_log"]
    backend_methods = [n for n in dir(registry.backend) if "audit" in n and not n.startswith("_")]
    assert sorted(backend_methods) == ["audit_log", "record_audit"]


# --------------------------------------------------------------------------- the server


@pytest.mark.remote
def test_the_request_id_is_the_answers_x_request_id(
    registry: Registry, request: pytest.FixtureRequest
) -> None:
    if not isinstance(registry, RemoteRegistry):
        pytest.skip("a server's request ids")
    server = request.getfixturevalue("remote_server_sqlite")
    v = _register(registry, 0)
    url = registry.backend.describe()
    with httpx2.Client(base_url=url, headers=server.auth) as http:
        answer = http.patch(f"/api/v1/versions/{v.id}/metrics", json={"metrics": {"acc": 1.0}})
        assert answer.status_code == 200
        chosen = http.post(
            f"/api/v1/versions/{v.id}/promote",
            json={"stage": "staging"},
            headers={"x-request-id": "my-trace-42"},
        )
        assert chosen.headers["x-request-id"] == "my-trace-42"
        # Writing to the log is not an HTTP verb: only GET is routed.
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert http.request(method, "/api/v1/audit").status_code == 405
        bad = http.get("/api/v1/audit", params={"since": "yesterday"})
        assert bad.status_code == 422
    promote, metrics = registry.audit_log(limit=2)
    assert metrics.request_id == answer.headers["x-request-id"]
    assert promote.request_id == "my-trace-42"
    # Every request has its own id.
    ids = [e.request_id for e in registry.audit_log()]
    assert len(set(ids)) == len(ids)
