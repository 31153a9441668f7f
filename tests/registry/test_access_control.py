"""Access control in the Registry itself: what a principal may do, on SQLite and PostgreSQL.

The server sets the token's principal per request (tests/server/test_access.py drives it
over HTTP); here the same principal is set in process, so the rules are tested where they
live. Without a principal (plain library use) every right is held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

import crucible_model_registry as cmr
from crucible_model_registry import (
    NotFoundError,
    PermissionDeniedError,
    PromotionDeniedError,
    Registry,
    Stage,
    ValidationError,
)
from crucible_model_registry._context import as_principal, current_actor
from crucible_model_registry.domain.access import Principal, Role, hash_token
from crucible_model_registry.domain.policy import PromotionPolicy
from crucible_model_registry.store.tables import AUDIT_LOG, TOKENS, VERSIONS

pytestmark = pytest.mark.in_process("sets a principal in process; the server's own tests drive it")


@contextmanager
def acting(name: str, role: str, *models: str) -> Iterator[Principal]:
    with as_principal(Principal(name, Role(role), models)) as principal:
        yield principal


def reg(registry: Registry, model: str, i: int = 0) -> cmr.ModelVersion:
    return registry.register(
        model_name=model, recipe="sft", base_model="base", training_config={"m": model, "i": i}
    )


def denied_entries(registry: Registry) -> list[tuple[str, str, str]]:
    with registry.engine.connect() as conn:
        rows = conn.execute(
            select(AUDIT_LOG.c.actor, AUDIT_LOG.c.action, AUDIT_LOG.c.target)
            .where(AUDIT_LOG.c.outcome == "denied")
            .order_by(AUDIT_LOG.c.id)
        ).all()
    return [tuple(r) for r in rows]


def test_without_a_principal_every_right_is_held(registry: Registry) -> None:
    v = reg(registry, "other")
    registry.promote(v, "production")
    registry.set_promotion_policy("other", PromotionPolicy(exclusive=["production"]))
    registry.delete_version(v, force=True)
    assert denied_entries(registry) == []


def test_a_reader_reads_granted_models_only(registry: Registry) -> None:
    g, o = reg(registry, "granted"), reg(registry, "other")
    with acting("reader", "read", "gr*"):
        assert registry.get_version(g.id) == g
        assert [m.name for m in registry.list_models()] == ["granted"]
        assert [v.id for v in registry.query()] == [g.id]
        assert cmr.Query(registry).count() == 1
        assert registry.find_by_config_hash(o.config_hash) is None
        with pytest.raises(PermissionDeniedError) as caught:
            registry.get_version(o.id)
        assert (caught.value.permission, caught.value.model) == ("read", "other")
        with pytest.raises(PermissionDeniedError) as caught:
            registry.update_metrics(g, {"accuracy": 0.5})
        assert (caught.value.permission, caught.value.model) == ("write", "granted")
    assert registry.get_version(g.id).metrics == {}
    assert denied_entries(registry) == [
        ("reader", "get_version", "other@1"),
        ("reader", "update_metrics", "granted@1"),
    ]


def test_a_writer_registers_and_moves_unprotected_stages_only(registry: Registry) -> None:
    g = reg(registry, "granted")
    with acting("ci", "write", "granted"):
        made = reg(registry, "granted", 1)
        assert made.registered_by == "ci"
        registry.promote(made, "staging")
        registry.set_alias(made, "candidate")
        with pytest.raises(PermissionDeniedError) as caught:
            registry.promote(made, "production")
        assert (caught.value.permission, caught.value.model) == ("promote", "granted")
        with pytest.raises(PermissionDeniedError):
            reg(registry, "brand-new")
        with pytest.raises(PermissionDeniedError):
            registry.delete_version(g, force=True)
        with pytest.raises(PermissionDeniedError):
            registry.set_promotion_policy("granted", None)
    assert registry.get_version(made.id).stage is Stage.STAGING
    assert [m.name for m in registry.list_models()] == ["granted"]
    assert registry.get_version(g.id) == g


def test_protected_stages_need_promote_both_ways_and_for_aliases(registry: Registry) -> None:
    v = reg(registry, "granted")
    registry.promote(v, "production")
    registry.set_alias(v, "live")
    w = reg(registry, "granted", 1)
    with acting("ci", "write", "granted"):
        with pytest.raises(PermissionDeniedError):
            registry.promote(v, "archived")  # out of production
        with pytest.raises(PermissionDeniedError):
            registry.set_alias(w, "live")  # moves an alias off a production version
        with pytest.raises(PermissionDeniedError):
            registry.delete_alias("granted", "live")
        with pytest.raises(PermissionDeniedError):
            registry.set_alias(v, "other-name")  # onto a production version
        registry.set_alias(w, "candidate")
    with acting("release", "promote", "granted"):
        registry.promote(v, "archived")
        registry.set_alias(w, "live")
    assert registry.get_version("granted@live").id == w.id


def test_a_policy_chooses_the_protected_stages(registry: Registry) -> None:
    v = reg(registry, "granted")
    registry.set_promotion_policy("granted", PromotionPolicy(protected=["staging"]))
    with acting("ci", "write", "granted"):
        registry.promote(v, "production")  # no longer protected
        with pytest.raises(PermissionDeniedError):
            registry.promote(v, "staging")
    assert registry.get_version(v.id).stage is Stage.PRODUCTION
    assert PromotionPolicy.from_dict(PromotionPolicy().to_dict()).protected == (Stage.PRODUCTION,)


def test_four_eyes_refuses_the_registrant_and_names_the_rule(registry: Registry) -> None:
    registry.register(model_name="granted", recipe="sft", base_model="b", training_config={})
    registry.set_promotion_policy(
        "granted", PromotionPolicy(require_distinct_promoter=["production"])
    )
    with acting("alice", "promote", "granted"):
        v = reg(registry, "granted", 1)
        registry.promote(v, "staging")  # not a four-eyes stage
        with pytest.raises(PromotionDeniedError) as caught:
            registry.promote(v, "production")
    assert any("require_distinct_promoter" in u for u in caught.value.unmet)
    assert registry.get_version(v.id).stage is Stage.STAGING
    with acting("bob", "promote", "granted"):
        assert registry.promote(v, "production").stage is Stage.PRODUCTION
    assert registry.stage_history(v)[-1].actor == "bob"


def test_four_eyes_refuses_a_version_whose_registrant_is_unknown(registry: Registry) -> None:
    v = reg(registry, "granted")
    with registry.engine.begin() as conn:  # as registered before migration 0004
        conn.execute(update(VERSIONS).where(VERSIONS.c.id == v.id).values(registered_by=None))
    assert registry.get_version(v.id).registered_by is None
    registry.set_promotion_policy(
        "granted", PromotionPolicy(require_distinct_promoter=["production"])
    )
    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(v, "production")
    assert any("not recorded" in u for u in caught.value.unmet)


def test_an_admin_of_some_models_cannot_manage_tokens(registry: Registry) -> None:
    with acting("team-admin", "admin", "granted*"):
        with pytest.raises(PermissionDeniedError) as caught:
            registry.create_token("x", role="read")
        assert caught.value.model is None
        with pytest.raises(PermissionDeniedError):
            registry.list_tokens()
        with pytest.raises(PermissionDeniedError):
            registry.check()
    assert registry.list_tokens() == []


def test_the_principal_is_the_actor_whatever_acting_as_says(registry: Registry) -> None:
    v = reg(registry, "granted")
    with acting("ci", "write"), cmr.acting_as("someone-else"):
        assert current_actor() == "ci"
        registry.promote(v, "staging")
    assert registry.stage_history(v)[-1].actor == "ci"


def test_lineage_answers_leave_out_models_that_may_not_be_read(registry: Registry) -> None:
    parent = reg(registry, "other")
    child = registry.register(
        model_name="granted", recipe="sft", base_model="b", training_config={}, parents=[parent]
    )
    with acting("reader", "read", "granted"):
        assert registry.get_ancestors(child) == []
        assert registry.get_lineage(child).edges == ()
        with pytest.raises(PermissionDeniedError):
            registry.add_lineage(parent, child)
    assert [a.id for a in registry.get_ancestors(child)] == [parent.id]


# --------------------------------------------------------------------------- tokens


def test_a_token_is_shown_once_and_stored_only_as_its_hash(registry: Registry) -> None:
    made = registry.create_token("ci", role="write", models=["team-*"], expires_in="90d")
    assert made.token.startswith("cmr_")
    assert len(made.token) >= 47
    assert made.token not in repr(made)
    assert made.models == ["team-*"]
    assert made.expires_at is not None
    assert timedelta(days=89) < made.expires_at - datetime.now(UTC) <= timedelta(days=90)
    with registry.engine.connect() as conn:
        stored = conn.execute(select(TOKENS)).one()._mapping
        log = conn.execute(select(AUDIT_LOG)).all()
    assert stored["token_hash"] == hash_token(made.token)
    assert made.token not in str(dict(stored))
    assert [(e.action, e.target) for e in log] == [("create_token", "ci")]
    assert made.token not in str([tuple(e) for e in log])
    (info,) = registry.list_tokens()
    assert (info.name, info.role, info.models) == ("ci", Role.WRITE, ["team-*"])
    assert made.token not in repr(info)


def test_revoking_a_token_deletes_it_and_is_audited(registry: Registry) -> None:
    registry.create_token("ci", role="read")
    registry.revoke_token("ci")
    assert registry.list_tokens() == []
    with pytest.raises(NotFoundError):
        registry.revoke_token("ci")
    with registry.engine.connect() as conn:
        actions = conn.execute(select(AUDIT_LOG.c.action).order_by(AUDIT_LOG.c.id)).scalars()
        assert list(actions) == ["create_token", "revoke_token"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "", "role": "read"}, "name"),
        ({"name": "a b", "role": "read"}, "name"),
        ({"name": "ok", "role": "owner"}, "role"),
        ({"name": "ok", "role": "read", "models": "g*"}, "models"),
        ({"name": "ok", "role": "read", "models": ["g[ab]"]}, "models"),
        ({"name": "ok", "role": "read", "expires_in": "soon"}, "expires_in"),
        ({"name": "ok", "role": "read", "expires_in": "0d"}, "expires_in"),
    ],
)
def test_a_bad_token_request_is_refused_and_writes_nothing(
    registry: Registry, fields: dict[str, object], field: str
) -> None:
    given = dict(fields)
    name = given.pop("name")
    with pytest.raises(ValidationError) as caught:
        registry.create_token(name, **given)  # type: ignore[arg-type]
    assert set(caught.value.errors) == {field}
    assert registry.list_tokens() == []


def test_a_token_name_is_taken_once(registry: Registry) -> None:
    registry.create_token("ci", role="read")
    with pytest.raises(ValidationError) as caught:
        registry.create_token("ci", role="admin")
    assert set(caught.value.errors) == {"name"}
    assert [t.role for t in registry.list_tokens()] == [Role.READ]
