"""Query specs as plain values: the builder, filter maps, composition, JSON, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crucible_model_registry import Query, Stage, ValidationError
from crucible_model_registry.domain.query_conditions import (
    AllOf,
    AnyOf,
    FieldEquals,
    HasTag,
    MetricCondition,
    Not,
    RelatedTo,
    StageIn,
    describe,
)
from crucible_model_registry.domain.query_filters import parse_metric_condition
from crucible_model_registry.domain.query_spec import (
    OrderKey,
    QuerySpec,
    decode_cursor,
    encode_cursor,
    spec_from_filters,
    spec_of,
)
from crucible_model_registry.domain.refs import VersionRef

# --------------------------------------------------------------------------- the builder


def test_every_builder_method_returns_a_new_query_and_leaves_the_old_one_alone():
    base = Query()
    built = (
        base.where_stage("production")
        .where_metric("accuracy", ">=", 0.9)
        .where_recipe("sl_basic")
        .where_base_model("meta-llama/Llama-3.1-8B")
        .where_model_name("llama-3.1-8b-sft")
        .where_tag("sft")
        .where_config_hash("A" * 64)
        .where_descendant_of(7, max_depth=2)
        .where_ancestor_of("m@1.0")
        .order_by("created_at", "desc")
        .order_by_metric("accuracy", "desc")
        .limit(10)
        .offset(5)
    )
    assert base.spec == QuerySpec()
    assert built.spec.conjuncts() == (
        StageIn((Stage.PRODUCTION,)),
        MetricCondition("accuracy", "gte", 0.9),
        FieldEquals("recipe", "sl_basic"),
        FieldEquals("base_model", "meta-llama/Llama-3.1-8B"),
        FieldEquals("model_name", "llama-3.1-8b-sft"),
        HasTag("sft"),
        FieldEquals("config_hash", "a" * 64),
        RelatedTo("descendant_of", VersionRef(id=7), 2),
        RelatedTo("ancestor_of", VersionRef(model_name="m", selector="1.0"), None),
    )
    assert built.spec.order == (
        OrderKey("created_at", "desc"),
        OrderKey("metric", "desc", "accuracy"),
    )
    assert (built.spec.limit, built.spec.offset) == (10, 5)


def test_stage_lists_and_aliases():
    spec = Query().where_stage(["staging", "development", Stage.STAGING]).spec
    assert spec.where == StageIn((Stage.STAGING, Stage.EXPERIMENT))


@pytest.mark.parametrize(
    ("spelling", "op"),
    [
        ("gt", "gt"),
        (">", "gt"),
        ("gte", "gte"),
        (">=", "gte"),
        ("lt", "lt"),
        ("<", "lt"),
        ("lte", "lte"),
        ("<=", "lte"),
        ("eq", "eq"),
        ("==", "eq"),
        ("ne", "ne"),
        ("!=", "ne"),
    ],
)
def test_every_operator_spelling(spelling, op):
    assert Query().where_metric("m", spelling, 1).spec.where == MetricCondition("m", op, 1.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda q: q.where_metric("accuracy", "~=", 0.9), "metric.op"),
        (lambda q: q.where_metric("accuracy", ">=", "0.9"), "metric.value"),
        (lambda q: q.where_metric("accuracy", ">=", True), "metric.value"),
        (lambda q: q.where_metric("accuracy", ">=", float("nan")), "metric.value"),
        (lambda q: q.where_metric("", ">=", 0.9), "metric.name"),
        (lambda q: q.where_metric("a\x00b", ">=", 0.9), "metric.name"),
        (lambda q: q.where_stage("shipped"), "stage"),
        (lambda q: q.where_stage([]), "stage"),
        (lambda q: q.where_recipe(""), "recipe"),
        (lambda q: q.where_model_name("bad name"), "model_name"),
        (lambda q: q.where_tag(3), "tag"),
        (lambda q: q.where_config_hash("abc"), "config_hash"),
        (lambda q: q.where_descendant_of(1, max_depth=0), "max_depth"),
        (lambda q: q.where_ancestor_of("not a ref"), "where_ancestor_of"),
        (lambda q: q.order_by("accuracy"), "order_by"),
        (lambda q: q.order_by("id", "up"), "direction"),
        (lambda q: q.order_by_metric("", "desc"), "order_by_metric.name"),
        (lambda q: q.limit(-1), "limit"),
        (lambda q: q.offset(-1), "offset"),
        (lambda q: q.limit(1.5), "limit"),
        (lambda q: q.page(0), "size"),
    ],
)
def test_bad_builder_input_names_the_offending_part(call, field):
    with pytest.raises(ValidationError) as caught:
        call(Query())
    assert field in caught.value.errors


def test_metric_names_are_data_whatever_they_hold():
    for name in ["it's", 'a"b', "x'; DROP TABLE cmr_model_versions; --", "精度", "a b/c"]:
        assert Query().where_metric(name, "gt", 0).spec.where == MetricCondition(name, "gt", 0.0)


# --------------------------------------------------------------------------- filter maps


def test_filter_map_keys():
    spec = spec_from_filters(
        {
            "stage": ["staging", "production"],
            "recipe": "sl_basic",
            "base_model": "org/base",
            "model_name": "m",
            "tag": "sft",
            "config_hash": "b" * 64,
            "metric": [("loss", "<", 0.5), ["bleu", "ne", 3]],
            "min_accuracy": 0.9,
            "max_latency_ms": 20,
        }
    )
    assert spec.conjuncts() == (
        StageIn((Stage.STAGING, Stage.PRODUCTION)),
        FieldEquals("recipe", "sl_basic"),
        FieldEquals("base_model", "org/base"),
        FieldEquals("model_name", "m"),
        HasTag("sft"),
        FieldEquals("config_hash", "b" * 64),
        MetricCondition("loss", "lt", 0.5),
        MetricCondition("bleu", "ne", 3.0),
        MetricCondition("accuracy", "gte", 0.9),
        MetricCondition("latency_ms", "lte", 20.0),
    )


def test_a_single_metric_triple():
    assert spec_from_filters({"metric": ("acc", ">", 1)}).where == MetricCondition("acc", "gt", 1.0)


def test_an_empty_filter_map_matches_everything():
    assert spec_from_filters({}) == QuerySpec()
    assert spec_of(None) == QuerySpec()


def test_every_bad_filter_key_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        spec_from_filters(
            {
                "colour": "red",
                "min_": 1,
                "min_accuracy": "high",
                "metric": ("acc", "approx", 1),
                "stage": "shipped",
            }
        )
    assert {"colour", "min_", "min_accuracy", "metric.op", "stage"} <= set(caught.value.errors)


@pytest.mark.parametrize("filters", [["stage"], "stage=production", 3])
def test_filters_must_be_a_mapping_or_a_query(filters):
    with pytest.raises(ValidationError) as caught:
        spec_of(filters)
    assert "filters" in caught.value.errors


def test_a_metric_list_item_that_is_not_a_triple_is_named():
    with pytest.raises(ValidationError) as caught:
        spec_from_filters({"metric": [("acc", ">", 1), ("acc", ">")]})
    assert "metric[1]" in caught.value.errors


# --------------------------------------------------------------------------- composition


def test_composition_combines_conditions_and_keeps_the_left_window():
    left = Query().where_stage("production").order_by("created_at", "desc").limit(3).offset(1)
    right = Query().where_tag("sft").order_by("id").limit(99)
    for combined, kind in ((left | right, AnyOf), (left & right, AllOf)):
        assert combined.spec.where == kind((StageIn((Stage.PRODUCTION,)), HasTag("sft")))
        assert combined.spec.order == left.spec.order
        assert (combined.spec.limit, combined.spec.offset) == (3, 1)


def test_negation():
    q = Query().where_tag("sft")
    assert (~q).spec.where == Not(HasTag("sft"))
    assert (~~q).spec == q.spec
    assert (~Query()).spec.where == Not(AllOf(()))


def test_matching_everything_absorbs_an_or_and_vanishes_from_an_and():
    q = Query().where_tag("sft")
    assert (Query() | q).spec.where == AllOf(())
    assert (Query() & q).spec.where == HasTag("sft")


def test_composition_with_other_types_is_refused():
    with pytest.raises(TypeError):
        _ = Query() | {"stage": "production"}


def test_queries_compare_by_their_spec():
    assert Query().where_tag("a") == Query().where_tag("a")
    assert Query().where_tag("a") != Query().where_tag("b")
    assert len({Query().where_tag("a"), Query().where_tag("a")}) == 1


# --------------------------------------------------------------------------- order


def test_ties_are_broken_by_id_in_the_direction_of_the_last_key():
    assert QuerySpec().sort_keys() == (OrderKey("id", "asc"),)
    spec = Query().order_by("model_name").order_by_metric("acc", "desc").spec
    assert spec.sort_keys()[-1] == OrderKey("id", "desc")
    assert Query().order_by("id", "desc").order_by("stage").spec.sort_keys() == (
        OrderKey("id", "desc"),
    )


# --------------------------------------------------------------------------- JSON and text


def test_json_round_trip_of_every_condition_kind():
    spec = (
        (
            (Query().where_stage(["staging", "production"]) | ~Query().where_tag("x"))
            & Query()
            .where_metric("it's", "ne", -1.5)
            .where_descendant_of("m@champion", max_depth=3)
        )
        .order_by_metric("acc", "desc")
        .order_by("version")
        .limit(4)
        .offset(2)
        .spec
    )
    data = spec.to_json()
    assert QuerySpec.from_json(data) == spec
    import json

    assert QuerySpec.from_json(json.dumps(data)) == spec


@pytest.mark.parametrize(
    "data",
    [
        {"version": 2, "where": {"all": []}},
        {"version": 1, "where": {"colour": "red"}},
        {"version": 1, "where": {"metric": ["acc", "~", 1]}},
        {"version": 1, "where": {"all": {}}},
        {"version": 1, "where": {"tag": "a", "stage": ["production"]}},
        {"version": 1, "order": [{"field": "size", "direction": "asc"}]},
        {"version": 1, "limit": -3},
        {"version": 1, "extra": True},
        "not json",
    ],
)
def test_bad_json_is_a_validation_error(data):
    with pytest.raises(ValidationError):
        QuerySpec.from_json(data)


def test_describe():
    spec = (
        Query().where_metric("accuracy", "gte", 0.9).where_metric("eval/bleu", "<", 30)
        & (Query().where_stage(["staging", "production"]) | ~Query().where_tag("wip"))
    ).spec
    assert [describe(c) for c in spec.conjuncts()] == [
        "accuracy >= 0.9",
        "'eval/bleu' < 30.0",
        "stage is staging or production or not (tagged 'wip')",
    ]
    assert describe(RelatedTo("ancestor_of", VersionRef(id=4), 2)) == (
        "ancestor of '4' within 2 generation(s)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accuracy>=0.9", MetricCondition("accuracy", "gte", 0.9)),
        (" loss < 0.5 ", MetricCondition("loss", "lt", 0.5)),
        ("bleu=30", MetricCondition("bleu", "eq", 30.0)),
        ("bleu != 30", MetricCondition("bleu", "ne", 30.0)),
        ("eval acc gte -2", MetricCondition("eval acc", "gte", -2.0)),
    ],
)
def test_parse_metric_condition(text, expected):
    assert parse_metric_condition(text) == expected


@pytest.mark.parametrize("text", ["accuracy", "accuracy>=", ">=0.9", "accuracy>=high", "acc>=nan"])
def test_parse_metric_condition_refuses_non_conditions(text):
    with pytest.raises(ValidationError) as caught:
        parse_metric_condition(text)
    assert any(field.startswith("metric") for field in caught.value.errors)


# --------------------------------------------------------------------------- cursors

KEYS = (OrderKey("created_at", "desc"), OrderKey("metric", "desc", "acc"), OrderKey("id", "desc"))


def test_cursor_round_trip():
    values = (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), None, 42)
    assert decode_cursor(KEYS, encode_cursor(KEYS, values)) == values
    other = (datetime(2026, 1, 2, tzinfo=UTC), 0.1 + 0.2, 7)
    assert decode_cursor(KEYS, encode_cursor(KEYS, other)) == other


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "eyJ",
        encode_cursor(KEYS, ("yesterday", None, 1)),
        encode_cursor(KEYS, ("2026-01-01T00:00:00", None, 1)),
        encode_cursor(KEYS, ("2026-01-01T00:00:00+00:00", "high", 1)),
        encode_cursor(KEYS, ("2026-01-01T00:00:00+00:00", None, True)),
        encode_cursor(KEYS, ("2026-01-01T00:00:00+00:00", None)),
    ],
)
def test_malformed_cursors_are_refused(cursor):
    with pytest.raises(ValidationError) as caught:
        decode_cursor(KEYS, cursor)
    assert set(caught.value.errors) == {"cursor"}


def test_a_cursor_from_another_ordering_is_refused():
    cursor = encode_cursor((OrderKey("id", "asc"),), (5,))
    with pytest.raises(ValidationError) as caught:
        decode_cursor((OrderKey("id", "desc"),), cursor)
    assert set(caught.value.errors) == {"cursor"}


@pytest.mark.parametrize("text", ["accuracy>>0.9", "accuracy=>0.9", "accuracy<>1", "acc>=0.9>=1"])
def test_a_doubled_operator_is_not_read_as_part_of_the_metric_name(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_metric_condition(text)
    assert "metric" in info.value.errors
