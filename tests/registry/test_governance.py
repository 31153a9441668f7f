"""Aliases, answers as of a past time, and promotion policies, through the public API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

import crucible_model_registry as cmr
from crucible_model_registry import (
    NotFoundError,
    PromotionDeniedError,
    PromotionPolicy,
    Registry,
    Stage,
    ValidationError,
)

MODEL = "llama-sft"
US = timedelta(microseconds=1)


def make(registry: Registry, n: int, **fields: object) -> cmr.ModelVersion:
    spec: dict[str, object] = {
        "model_name": MODEL,
        "recipe": "sl_basic",
        "base_model": "org/base",
        "training_config": {"run": n},
    }
    spec.update(fields)
    return registry.register(**spec)  # type: ignore[arg-type]


def last_at(registry: Registry, version: cmr.ModelVersion) -> datetime:
    return registry.stage_history(version)[-1].at


@pytest.fixture
def promote_events() -> Iterator[list[dict[str, object]]]:
    seen: list[dict[str, object]] = []
    cmr.telemetry.attach(
        "governance-test",
        ("crucible_model_registry", "promote"),
        lambda _event, _measurements, metadata: seen.append(dict(metadata)),
    )
    yield seen
    cmr.telemetry.detach("governance-test")


# --------------------------------------------------------------------------- aliases


def test_alias_resolves_as_a_ref(registry: Registry) -> None:
    v1 = make(registry, 1)
    returned = registry.set_alias(v1, "champion")
    assert returned.id == v1.id
    assert registry.get_version(f"{MODEL}@champion").id == v1.id


def test_alias_moves_atomically_and_every_move_is_recorded(registry: Registry) -> None:
    v1, v2 = make(registry, 1), make(registry, 2)
    registry.set_alias(v1, "champion", reason="first")
    registry.set_alias(f"{MODEL}@{v2.version}", "champion", reason="better")

    assert registry.get_version(f"{MODEL}@champion").id == v2.id
    history = registry.alias_history(MODEL)
    assert [(c.alias, c.version_id, c.reason, c.actor) for c in history] == [
        ("champion", v1.id, "first", "tester"),
        ("champion", v2.id, "better", "tester"),
    ]
    assert history[0].at <= history[1].at
    assert all(c.at.tzinfo is not None for c in history)


def test_setting_an_alias_to_its_current_version_records_nothing(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.set_alias(v1, "champion")
    registry.set_alias(v1, "champion")
    assert len(registry.alias_history(MODEL)) == 1


def test_deleted_alias_no_longer_resolves_and_the_deletion_is_recorded(
    registry: Registry,
) -> None:
    v1 = make(registry, 1)
    registry.set_alias(v1, "champion")
    registry.delete_alias(MODEL, "champion", reason="retired")

    with pytest.raises(NotFoundError):
        registry.get_version(f"{MODEL}@champion")
    last = registry.alias_history(MODEL)[-1]
    assert (last.alias, last.version_id, last.reason) == ("champion", None, "retired")


def test_deleting_an_absent_alias_raises_not_found(registry: Registry) -> None:
    make(registry, 1)
    with pytest.raises(NotFoundError) as caught:
        registry.delete_alias(MODEL, "champion")
    assert caught.value.kind == "alias"
    assert registry.alias_history(MODEL) == []


def test_alias_calls_on_an_unknown_model_raise_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.alias_history("nobody")
    with pytest.raises(NotFoundError):
        registry.delete_alias("nobody", "champion")


def test_deleting_a_version_deletes_its_aliases_in_the_history(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.set_alias(v1, "champion")
    registry.delete_version(v1)
    assert registry.alias_history(MODEL)[-1].version_id is None
    with pytest.raises(NotFoundError):
        registry.get_version(f"{MODEL}@champion")


@pytest.mark.parametrize(
    "alias",
    [
        "production",
        "Production",
        "STAGING",
        "experiment",
        "archived",
        "development",
        "Development",
        "latest",
        "Latest",
        "1st",
        "_x",
        "has space",
        "a" * 65,
        "",
    ],
)
def test_alias_names_breaking_the_rules_are_refused(registry: Registry, alias: str) -> None:
    v1 = make(registry, 1)
    with pytest.raises(ValidationError) as caught:
        registry.set_alias(v1, alias)
    assert "alias" in caught.value.errors
    assert registry.alias_history(MODEL) == []


@pytest.mark.parametrize("alias", ["rc1", "RC1"])
def test_alias_named_like_an_existing_version_is_refused(registry: Registry, alias: str) -> None:
    make(registry, 1, version="rc1")
    v2 = make(registry, 2)
    with pytest.raises(ValidationError) as caught:
        registry.set_alias(v2, alias)
    assert "alias" in caught.value.errors
    assert registry.alias_history(MODEL) == []
    assert registry.get_version(f"{MODEL}@rc1").version == "rc1"


@pytest.mark.parametrize("version", ["candidate", "Candidate"])
def test_version_string_equal_to_an_alias_is_refused(registry: Registry, version: str) -> None:
    v1 = make(registry, 1)
    registry.set_alias(v1, "candidate")
    with pytest.raises(ValidationError) as caught:
        make(registry, 2, version=version)
    assert "version" in caught.value.errors
    assert registry.get_version(f"{MODEL}@latest").id == v1.id


def test_another_models_version_string_does_not_block_an_alias(registry: Registry) -> None:
    make(registry, 1, model_name="other", version="rc1")
    v = make(registry, 2)
    registry.set_alias(v, "rc1")
    assert registry.get_version(f"{MODEL}@rc1").id == v.id
    assert registry.get_version("other@rc1").model_name == "other"


# --------------------------------------------------------------------------- time travel


def test_at_before_the_first_promotion_raises_not_found(registry: Registry) -> None:
    v1 = make(registry, 1)
    before = datetime.now(UTC)
    registry.promote(v1, "production")
    with pytest.raises(NotFoundError) as caught:
        registry.get_version(f"{MODEL}@production", at=before)
    assert caught.value.kind == "version"
    assert registry.get_version(f"{MODEL}@production", at=datetime.now(UTC)).id == v1.id


def test_at_an_exact_transition_instant_sees_that_transition(registry: Registry) -> None:
    v1, v2 = make(registry, 1), make(registry, 2)
    registry.promote(v1, "production")
    registry.promote(v2, "production", archive_existing=True)
    swap = last_at(registry, v2)

    assert registry.get_version(f"{MODEL}@production", at=swap).id == v2.id
    assert registry.get_version(f"{MODEL}@production", at=swap - US).id == v1.id
    assert registry.get_version(f"{MODEL}@archived", at=swap).id == v1.id
    with pytest.raises(NotFoundError):
        registry.get_version(f"{MODEL}@archived", at=swap - US)


def test_at_returns_the_version_as_it_is_now(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.promote(v1, "production")
    then = last_at(registry, v1)
    registry.promote(v1, "archived")
    held = registry.get_version(f"{MODEL}@production", at=then)
    assert (held.id, held.stage) == (v1.id, Stage.ARCHIVED)


def test_at_answers_alias_refs_before_and_after_deletion(registry: Registry) -> None:
    v1, v2 = make(registry, 1), make(registry, 2)
    registry.set_alias(v1, "champion")
    registry.set_alias(v2, "champion")
    registry.delete_alias(MODEL, "champion")
    set1, set2, deleted = (c.at for c in registry.alias_history(MODEL))
    ref = f"{MODEL}@champion"

    assert registry.get_version(ref, at=set1).id == v1.id
    assert registry.get_version(ref, at=set2 - US).id == v1.id
    assert registry.get_version(ref, at=set2).id == v2.id
    assert registry.get_version(ref, at=deleted - US).id == v2.id
    for when in (set1 - US, deleted, datetime.now(UTC)):
        with pytest.raises(NotFoundError):
            registry.get_version(ref, at=when)


def test_at_accepts_any_timezone(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.promote(v1, "staging")
    instant = last_at(registry, v1).astimezone(timezone(timedelta(hours=5)))
    assert registry.get_version(f"{MODEL}@staging", at=instant).id == v1.id


def test_at_latest_is_the_most_recent_registration_by_then(registry: Registry) -> None:
    v1 = make(registry, 1)
    first = registry.stage_history(v1)[0].at
    make(registry, 2)
    assert registry.get_version(f"{MODEL}@latest", at=first).id == v1.id


def test_naive_at_raises_validation_error(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.promote(v1, "production")
    with pytest.raises(ValidationError) as caught:
        registry.get_version(f"{MODEL}@production", at=datetime.now())
    assert "at" in caught.value.errors


@pytest.mark.parametrize("ref", ["id", "record", f"{MODEL}@1"])
def test_at_with_an_id_or_a_version_string_raises_validation_error(
    registry: Registry, ref: str
) -> None:
    v1 = make(registry, 1)
    given: object = {"id": v1.id, "record": v1}.get(ref, ref)
    with pytest.raises(ValidationError):
        registry.get_version(given, at=datetime.now(UTC))  # type: ignore[arg-type]


def test_at_with_an_alias_the_model_never_had_raises_not_found(registry: Registry) -> None:
    make(registry, 1)
    with pytest.raises(NotFoundError):
        registry.get_version(f"{MODEL}@champion", at=datetime.now(UTC))


# --------------------------------------------------------------------------- policy


def test_without_a_policy_any_transition_is_allowed(registry: Registry) -> None:
    v1 = make(registry, 1)
    assert registry.get_promotion_policy(MODEL) is None
    assert registry.promote(v1, "production").stage is Stage.PRODUCTION
    assert registry.promote(v1, "experiment").stage is Stage.EXPERIMENT


def test_policy_is_stored_for_every_client_and_can_be_removed(
    registry: Registry, db_url: str
) -> None:
    make(registry, 1)
    policy = PromotionPolicy(
        allowed={"production": ["staging"], "staging": ["development", "experiment"]},
        exclusive=["production"],
    )
    registry.set_promotion_policy(MODEL, policy)
    other = Registry.from_url(db_url)
    try:
        stored = other.get_promotion_policy(MODEL)
        assert stored == policy
        assert stored is not None
        assert stored.allowed == {
            Stage.STAGING: (Stage.EXPERIMENT,),
            Stage.PRODUCTION: (Stage.STAGING,),
        }
        other.set_promotion_policy(MODEL, None)
        assert registry.get_promotion_policy(MODEL) is None
    finally:
        other.close()


def test_policy_fields_default_to_empty() -> None:
    policy = PromotionPolicy()
    assert (policy.allowed, policy.gates, policy.exclusive) == ({}, {}, ())
    assert PromotionPolicy.from_dict(policy.to_dict()) == policy


def test_policy_on_an_unknown_model_raises_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.set_promotion_policy("nobody", PromotionPolicy())
    with pytest.raises(NotFoundError):
        registry.get_promotion_policy("nobody")


@pytest.mark.parametrize(
    "data",
    [
        {"allowed": {"prod": ["staging"]}},
        {"allowed": {"production": ["stagin"]}},
        {"allowed": {"production": "staging"}},
        {"exclusive": ["live"]},
        {"exclusive": ["archived"]},
        {"gates": {"nowhere": {}}},
        {"approvers": ["me"]},
    ],
)
def test_bad_policy_raises_validation_error_and_stores_nothing(
    registry: Registry, data: dict[str, object]
) -> None:
    make(registry, 1)
    registry.set_promotion_policy(MODEL, PromotionPolicy(exclusive=["production"]))
    with pytest.raises(ValidationError):
        registry.set_promotion_policy(MODEL, data)
    assert registry.get_promotion_policy(MODEL) == PromotionPolicy(exclusive=["production"])


def test_disallowed_source_stage_is_denied_and_nothing_changes(
    registry: Registry, promote_events: list[dict[str, object]]
) -> None:
    v1 = make(registry, 1)
    registry.set_promotion_policy(MODEL, PromotionPolicy(allowed={"production": ["staging"]}))
    history = registry.stage_history(v1)

    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(v1, "production")

    assert caught.value.version_ref == f"{MODEL}@{v1.version}"
    assert caught.value.target == "production"
    assert len(caught.value.unmet) == 1
    assert registry.get_version(v1.id).stage is Stage.EXPERIMENT
    assert registry.stage_history(v1) == history
    assert promote_events[-1]["outcome"] == "denied"
    assert promote_events[-1]["actor"] == "tester"


def test_allowed_restricts_only_the_targets_it_names(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.set_promotion_policy(MODEL, PromotionPolicy(allowed={"production": ["staging"]}))
    registry.promote(v1, "staging")
    assert registry.promote(v1, "production").stage is Stage.PRODUCTION
    assert registry.promote(v1, "experiment").stage is Stage.EXPERIMENT


def test_promoting_to_the_current_stage_stays_a_no_op_under_any_policy(
    registry: Registry, promote_events: list[dict[str, object]]
) -> None:
    v1 = make(registry, 1)
    registry.promote(v1, "production")
    registry.set_promotion_policy(MODEL, PromotionPolicy(allowed={"production": []}))
    history = registry.stage_history(v1)
    assert registry.promote(v1, "production").stage is Stage.PRODUCTION
    assert registry.stage_history(v1) == history
    assert promote_events[-1]["outcome"] == "unchanged"


def test_exclusive_stage_swap_archives_the_incumbent_in_the_same_transaction(
    registry: Registry, promote_events: list[dict[str, object]]
) -> None:
    v1, v2 = make(registry, 1), make(registry, 2)
    # The incumbent's archiving need not pass `allowed`.
    policy = PromotionPolicy(allowed={"archived": ["experiment"]}, exclusive=["production"])
    registry.set_promotion_policy(MODEL, policy)
    registry.promote(v1, "production")
    registry.promote(v2, "production", reason="better")

    assert registry.get_version(v1.id).stage is Stage.ARCHIVED
    assert registry.get_version(f"{MODEL}@production").id == v2.id
    archived, promoted = registry.stage_history(v1)[-1], registry.stage_history(v2)[-1]
    assert (archived.from_stage, archived.to_stage, archived.actor) == (
        Stage.PRODUCTION,
        Stage.ARCHIVED,
        "tester",
    )
    assert (promoted.from_stage, promoted.to_stage, promoted.reason) == (
        Stage.EXPERIMENT,
        Stage.PRODUCTION,
        "better",
    )
    assert archived.at == promoted.at
    assert promote_events[-1]["outcome"] == "promoted"
    assert promote_events[-1]["actor"] == "tester"
    assert promote_events[-1]["archived"] == 1


def test_exclusive_stage_archives_every_incumbent(registry: Registry) -> None:
    v1, v2, v3 = make(registry, 1), make(registry, 2), make(registry, 3)
    registry.promote(v1, "staging")
    registry.promote(v2, "staging")
    registry.set_promotion_policy(MODEL, PromotionPolicy(exclusive=["staging"]))
    registry.promote(v3, "staging")
    stages = {v.id: registry.get_version(v.id).stage for v in (v1, v2, v3)}
    assert stages == {v1.id: Stage.ARCHIVED, v2.id: Stage.ARCHIVED, v3.id: Stage.STAGING}


def test_denied_promotion_into_an_exclusive_stage_keeps_the_incumbent(
    registry: Registry,
) -> None:
    v1, v2 = make(registry, 1), make(registry, 2)
    registry.promote(v1, "production")
    registry.set_promotion_policy(
        MODEL, PromotionPolicy(allowed={"production": ["staging"]}, exclusive=["production"])
    )
    with pytest.raises(PromotionDeniedError):
        registry.promote(v2, "production")
    assert registry.get_version(v1.id).stage is Stage.PRODUCTION
    assert registry.get_version(v2.id).stage is Stage.EXPERIMENT


# --------------------------------------------------------------------------- gates


def accuracy_gate(threshold: float = 0.9) -> PromotionPolicy:
    return PromotionPolicy(
        gates={"production": cmr.Query().where_metric("accuracy", "gte", threshold)}
    )


def test_gate_denies_a_version_lacking_the_metric(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.set_promotion_policy(MODEL, accuracy_gate())
    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(v1, "production")
    assert len(caught.value.unmet) == 1
    assert registry.get_version(v1.id).stage is Stage.EXPERIMENT


def test_gate_denies_a_metric_below_the_threshold_until_it_is_met(registry: Registry) -> None:
    v1 = make(registry, 1, metrics={"accuracy": 0.85})
    registry.set_promotion_policy(MODEL, accuracy_gate())
    history = registry.stage_history(v1)
    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(v1, "production")
    assert len(caught.value.unmet) == 1
    assert registry.stage_history(v1) == history

    registry.update_metrics(v1, {"accuracy": 0.9})
    assert registry.promote(v1, "production").stage is Stage.PRODUCTION


def test_gate_only_guards_its_own_target_stage(registry: Registry) -> None:
    v1 = make(registry, 1)
    registry.set_promotion_policy(MODEL, accuracy_gate())
    assert registry.promote(v1, "staging").stage is Stage.STAGING


def test_denial_lists_every_unmet_condition(registry: Registry) -> None:
    v1 = make(registry, 1, metrics={"accuracy": 0.8, "loss": 0.1})
    gate = (
        cmr.Query()
        .where_metric("accuracy", ">=", 0.9)
        .where_metric("loss", "<", 0.5)
        .where_metric("bleu", "gt", 20)
        .where_tag("approved")
    )
    registry.set_promotion_policy(
        MODEL, PromotionPolicy(allowed={"production": ["staging"]}, gates={"production": gate})
    )
    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(v1, "production")
    # Source stage, accuracy, the missing bleu and the tag; loss passes.
    assert len(caught.value.unmet) == 4
    assert registry.get_version(v1.id).stage is Stage.EXPERIMENT


def test_composed_gate_counts_as_one_condition(registry: Registry) -> None:
    v1 = make(registry, 1, metrics={"accuracy": 0.5})
    gate = cmr.Query().where_metric("accuracy", "gte", 0.9) | cmr.Query().where_tag("override")
    registry.set_promotion_policy(MODEL, PromotionPolicy(gates={"production": gate}))
    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(v1, "production")
    assert len(caught.value.unmet) == 1
    registry.add_tags(v1, ["override"])
    assert registry.promote(v1, "production").stage is Stage.PRODUCTION


def test_gate_given_as_a_filter_map(registry: Registry) -> None:
    v1 = make(registry, 1, metrics={"accuracy": 0.95})
    v2 = make(registry, 2, metrics={"accuracy": 0.5})
    registry.set_promotion_policy(
        MODEL, {"gates": {"production": {"min_accuracy": 0.9}}, "exclusive": ["production"]}
    )
    assert registry.promote(v1, "production").stage is Stage.PRODUCTION
    with pytest.raises(PromotionDeniedError):
        registry.promote(v2, "production")


def test_gated_policy_round_trips_through_the_database(registry: Registry) -> None:
    make(registry, 1)
    policy = PromotionPolicy(
        allowed={"production": ["staging"]},
        gates={
            "production": cmr.Query().where_metric("accuracy", "gte", 0.9).where_tag("ok")
            | ~cmr.Query().where_recipe("sl_basic")
        },
        exclusive=["production"],
    )
    registry.set_promotion_policy(MODEL, policy)
    assert registry.get_promotion_policy(MODEL) == policy
    assert PromotionPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    "gate",
    [
        {"metric": ["accuracy", "~", 0.9]},
        {"metric": ["accuracy", "approx", 0.9]},
        {"min_accuracy": "high"},
        {"accuracy": 0.9},
        {"version": 1, "where": {"metric": ["accuracy", "bigger", 0.9]}},
        {"version": 1, "where": {"all": []}, "order": [{"field": "id", "direction": "asc"}]},
    ],
)
def test_bad_gate_raises_validation_error_and_stores_nothing(
    registry: Registry, gate: dict[str, object]
) -> None:
    make(registry, 1)
    with pytest.raises(ValidationError):
        registry.set_promotion_policy(MODEL, {"gates": {"production": gate}})
    assert registry.get_promotion_policy(MODEL) is None


@pytest.mark.parametrize(
    "gate",
    [
        cmr.Query().where_metric("accuracy", "gte", 0.9).order_by("created_at"),
        cmr.Query().where_metric("accuracy", "gte", 0.9).limit(1),
        cmr.Query().where_descendant_of(f"{MODEL}@1"),
    ],
)
def test_gate_with_ordering_limit_or_lineage_is_refused(gate: cmr.Query) -> None:
    with pytest.raises(ValidationError) as caught:
        PromotionPolicy(gates={"production": gate})
    assert "gates.production" in caught.value.errors


def test_unknown_metric_operator_is_refused_by_the_query_builder() -> None:
    with pytest.raises(ValidationError):
        PromotionPolicy(gates={"production": cmr.Query().where_metric("accuracy", "~", 0.9)})


def test_promote_span_carries_the_actor_and_the_outcome(registry: Registry) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    v1, v2 = make(registry, 1, metrics={"accuracy": 0.95}), make(registry, 2)
    registry.set_promotion_policy(MODEL, accuracy_gate())
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    cmr.telemetry.set_tracer_provider(provider)
    try:
        registry.promote(v1, "production")
        with pytest.raises(PromotionDeniedError):
            registry.promote(v2, "production")
    finally:
        cmr.telemetry.set_tracer_provider(None)
        provider.shutdown()

    promoted, denied = (dict(s.attributes or {}) for s in exporter.get_finished_spans())
    assert (promoted["cmr.outcome"], promoted["cmr.actor"]) == ("promoted", "tester")
    assert (denied["cmr.outcome"], denied["cmr.actor"]) == ("denied", "tester")
    assert (denied["cmr.model"], denied["cmr.version"]) == (MODEL, v2.version)


# --------------------------------------------------------------------------- issue 14


def test_archive_existing_is_denied_when_the_policy_forbids_archiving_the_incumbent(
    registry: Registry,
) -> None:
    incumbent, newcomer = make(registry, 1), make(registry, 2)
    registry.promote(incumbent, "production")
    # Only staging versions may be archived: a production incumbent may not.
    registry.set_promotion_policy(MODEL, PromotionPolicy(allowed={"archived": ["staging"]}))
    history = registry.stage_history(incumbent)

    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(newcomer, "production", archive_existing=True)

    [unmet] = caught.value.unmet
    assert incumbent.version in unmet
    assert caught.value.version_ref == f"{MODEL}@{newcomer.version}"
    assert registry.get_version(incumbent.id).stage is Stage.PRODUCTION
    assert registry.get_version(newcomer.id).stage is Stage.EXPERIMENT
    assert registry.stage_history(incumbent) == history


def test_archive_existing_archives_incumbents_the_policy_lets_go(registry: Registry) -> None:
    incumbent, newcomer = make(registry, 1), make(registry, 2)
    registry.promote(incumbent, "production")
    registry.set_promotion_policy(MODEL, PromotionPolicy(allowed={"archived": ["production"]}))

    registry.promote(newcomer, "production", archive_existing=True)

    assert registry.get_version(incumbent.id).stage is Stage.ARCHIVED


def test_an_exclusive_swap_still_archives_without_passing_allowed(registry: Registry) -> None:
    # API.md: the exclusive stage's own swap need not pass `allowed` (issue 14 is about
    # archive_existing only).
    incumbent, newcomer = make(registry, 1), make(registry, 2)
    registry.promote(incumbent, "production")
    registry.set_promotion_policy(
        MODEL, PromotionPolicy(allowed={"archived": ["staging"]}, exclusive=["production"])
    )

    registry.promote(newcomer, "production", archive_existing=True)

    assert registry.get_version(incumbent.id).stage is Stage.ARCHIVED
    assert registry.get_version(newcomer.id).stage is Stage.PRODUCTION


def test_a_tag_gate_is_not_met_by_the_models_tag(registry: Registry) -> None:
    version = make(registry, 1)
    registry.update_model(MODEL, tags=["reviewed"])
    registry.set_promotion_policy(
        MODEL, PromotionPolicy(gates={"production": cmr.Query().where_tag("reviewed")})
    )

    with pytest.raises(PromotionDeniedError) as caught:
        registry.promote(version, "production")

    assert len(caught.value.unmet) == 1
    assert registry.get_version(version.id).stage is Stage.EXPERIMENT
    registry.add_tags(version, ["reviewed"])
    assert registry.promote(version, "production").stage is Stage.PRODUCTION


def test_a_policy_may_let_the_models_tags_meet_a_tag_gate(registry: Registry) -> None:
    version = make(registry, 1)
    registry.update_model(MODEL, tags=["reviewed"])
    policy = PromotionPolicy(
        gates={"production": cmr.Query().where_tag("reviewed")}, gate_tags="version_or_model"
    )
    registry.set_promotion_policy(MODEL, policy)

    assert registry.get_promotion_policy(MODEL) == policy
    assert registry.promote(version, "production").stage is Stage.PRODUCTION


def test_gate_tags_accepts_only_its_two_values() -> None:
    with pytest.raises(ValidationError) as caught:
        PromotionPolicy(gate_tags="model")  # type: ignore[arg-type]
    assert set(caught.value.errors) == {"gate_tags"}
    with pytest.raises(ValidationError):
        PromotionPolicy.from_dict({"gate_tags": "anything"})


@pytest.mark.in_process("at a server the actor is the token's principal, not CMR_ACTOR")
def test_policy_changes_are_kept_with_old_and_new_policy_actor_and_time(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(registry, 1)
    first = PromotionPolicy(exclusive=["production"])
    second = PromotionPolicy(allowed={"production": ["staging"]})
    before = datetime.now(UTC)
    registry.set_promotion_policy(MODEL, first)
    monkeypatch.setenv("CMR_ACTOR", "release-manager")
    registry.set_promotion_policy(MODEL, second)
    registry.set_promotion_policy(MODEL, second)  # no change: nothing recorded
    registry.set_promotion_policy(MODEL, None)

    history = registry.policy_history(MODEL)

    assert [(c.old, c.new) for c in history] == [(None, first), (first, second), (second, None)]
    assert [c.actor for c in history] == ["tester", "release-manager", "release-manager"]
    assert before <= history[0].at <= history[1].at <= history[2].at


def test_policy_history_of_an_unknown_model_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError) as caught:
        registry.policy_history("no-such-model")
    assert caught.value.kind == "model"
