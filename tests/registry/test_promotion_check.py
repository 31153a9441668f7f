"""check_promotion: every policy condition with its outcome, the same judgement as promote."""

from __future__ import annotations

import pytest

import crucible_model_registry as cmr
from crucible_model_registry import NotFoundError, PromotionDeniedError, Registry, Stage

MODEL = "checked"


def make(registry: Registry, n: int, accuracy: float | None = None) -> cmr.ModelVersion:
    metrics = {} if accuracy is None else {"accuracy": accuracy}
    return registry.register(
        model_name=MODEL,
        recipe="sl_basic",
        base_model="org/base",
        training_config={"run": n},
        metrics=metrics,
        tags=["sft"],
    )


@pytest.fixture
def policed(registry: Registry) -> Registry:
    make(registry, 0)
    registry.set_promotion_policy(
        MODEL,
        cmr.PromotionPolicy(
            allowed={"production": ["staging"]},
            gates={"production": cmr.Query().where_metric("accuracy", "gte", 0.9).where_tag("sft")},
            exclusive=["production"],
        ),
    )
    return registry


def test_unmet_conditions_are_exactly_what_promote_denies(policed: Registry) -> None:
    v = make(policed, 1, accuracy=0.5)
    check = policed.check_promotion(v, "production")
    assert not check.allowed
    assert [c.met for c in check.conditions] == [False, False, True]
    with pytest.raises(PromotionDeniedError) as denied:
        policed.promote(v, "production")
    assert denied.value.unmet == check.unmet
    assert policed.get_version(v.id).stage is Stage.EXPERIMENT
    assert "(it is 0.5)" in check.unmet[1]


def test_a_passing_version_meets_every_condition_and_then_promotes(policed: Registry) -> None:
    v = make(policed, 2, accuracy=0.95)
    policed.promote(v, "staging")
    check = policed.check_promotion(f"{MODEL}@{v.version}", Stage.PRODUCTION)
    assert check.allowed
    assert check.unmet == []
    assert len(check.conditions) == 3
    assert check.from_stage is Stage.STAGING
    assert check.archives_incumbent
    assert policed.promote(v, "production").stage is Stage.PRODUCTION


def test_checking_writes_nothing(policed: Registry) -> None:
    v = make(policed, 3, accuracy=0.95)
    before = policed.stage_history(v)
    policed.check_promotion(v, "staging")
    assert policed.stage_history(v) == before
    assert policed.get_version(v.id).stage is Stage.EXPERIMENT


def test_without_a_policy_there_is_nothing_to_meet(registry: Registry) -> None:
    v = make(registry, 4)
    check = registry.check_promotion(v, "production")
    assert check.conditions == []
    assert check.allowed
    assert not check.archives_incumbent


def test_current_stage_is_a_no_op_with_no_conditions(policed: Registry) -> None:
    v = make(policed, 5)
    check = policed.check_promotion(v, "experiment")
    assert check.conditions == []
    assert not check.archives_incumbent


def test_unknown_version_and_stage_raise(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.check_promotion(f"{MODEL}@nope", "staging")
    v = make(registry, 6)
    with pytest.raises(cmr.ValidationError) as exc:
        registry.check_promotion(v, "moon")
    assert "stage" in exc.value.errors


@pytest.mark.in_process  # through a server the actor is the token's principal, not acting_as
def test_the_four_eyes_rule_is_judged_for_the_caller(registry: Registry) -> None:
    from crucible_model_registry import acting_as

    with acting_as("alice"):
        v = make(registry, 7, accuracy=0.95)
    registry.set_promotion_policy(
        MODEL, cmr.PromotionPolicy(require_distinct_promoter=["production"], protected=[])
    )
    with acting_as("alice"):
        own = registry.check_promotion(v, "production")
        with pytest.raises(PromotionDeniedError) as denied:
            registry.promote(v, "production")
    assert not own.allowed
    assert own.unmet == denied.value.unmet
    with acting_as("bob"):
        other = registry.check_promotion(v, "production")
        assert other.allowed
        assert [c.met for c in other.conditions] == [True]
        assert registry.promote(v, "production").stage is Stage.PRODUCTION
