"""The query DSL of API.md §4 through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

import crucible_model_registry as cmr
from crucible_model_registry import (
    ModelVersion,
    NotFoundError,
    Page,
    Query,
    Registry,
    Stage,
    ValidationError,
    store,
)
from crucible_model_registry.domain.query_spec import QuerySpec

_seeds = itertools.count(1)


def reg(registry: Registry, model: str, recipe: str, base: str, **extra: Any) -> ModelVersion:
    return registry.register(
        model_name=model,
        recipe=recipe,
        base_model=base,
        training_config={"seed": next(_seeds)},
        **extra,
    )


@dataclass
class World:
    registry: Registry
    sft_a: ModelVersion  # alpha, production, acc 0.9, loss 0.3, tag sft, one artifact
    sft_b: ModelVersion  # alpha, staging, acc 0.95
    dpo: ModelVersion  # Beta (model tag team-x), experiment, acc 0.8, child of sft_a
    rl: ModelVersion  # beta, archived, no metrics, child of dpo
    merge: ModelVersion  # gamma, production, acc 0.95, loss 0.1, child of sft_b and dpo

    def ids(self, query: Query) -> list[int]:
        return [v.id for v in query.using(self.registry).execute()]


@pytest.fixture
def world(registry: Registry) -> World:
    sft_a = reg(
        registry,
        "alpha",
        "sl_basic",
        "org/base-1",
        metrics={"accuracy": 0.9, "loss": 0.3},
        tags=["sft"],
        artifacts=[{"type": "checkpoint", "storage_backend": "s3", "storage_path": "s3://b/a"}],
    )
    sft_b = reg(registry, "alpha", "sl_basic", "org/base-1", metrics={"accuracy": 0.95})
    dpo = reg(registry, "Beta", "dpo", "org/base-1", metrics={"accuracy": 0.8}, parents=[sft_a])
    rl = reg(registry, "beta", "rl", "org/base-2", parents=[dpo])
    merge = reg(
        registry,
        "gamma",
        "merge",
        "org/base-2",
        metrics={"accuracy": 0.95, "loss": 0.1},
        parents=[sft_b, dpo],
        lineage_type="merge",
    )
    registry.promote(sft_a, "production")
    registry.promote(sft_b, "staging")
    registry.promote(rl, "archived")
    registry.promote(merge, "production")
    registry.update_model("Beta", tags=["team-x"])
    return World(registry, sft_a, sft_b, dpo, rl, merge)


# --------------------------------------------------------------------------- conditions


def test_each_condition(world: World):
    w = world
    assert w.ids(Query()) == [w.sft_a.id, w.sft_b.id, w.dpo.id, w.rl.id, w.merge.id]
    assert w.ids(Query().where_stage("production")) == [w.sft_a.id, w.merge.id]
    assert w.ids(Query().where_stage(["staging", "archived"])) == [w.sft_b.id, w.rl.id]
    assert w.ids(Query().where_recipe("sl_basic")) == [w.sft_a.id, w.sft_b.id]
    assert w.ids(Query().where_base_model("org/base-2")) == [w.rl.id, w.merge.id]
    assert w.ids(Query().where_model_name("beta")) == [w.rl.id]
    assert w.ids(Query().where_model_name("nobody")) == []
    assert w.ids(Query().where_config_hash(w.dpo.config_hash.upper())) == [w.dpo.id]
    assert w.ids(Query().where_metric("accuracy", ">=", 0.95)) == [w.sft_b.id, w.merge.id]
    assert w.ids(Query().where_metric("accuracy", "ne", 0.95)) == [w.sft_a.id, w.dpo.id]
    assert w.ids(Query().where_metric("loss", "lt", 1)) == [w.sft_a.id, w.merge.id]


def test_a_tag_matches_the_versions_tags_or_its_models(world: World):
    assert world.ids(Query().where_tag("sft")) == [world.sft_a.id]
    assert world.ids(Query().where_tag("team-x")) == [world.dpo.id]
    assert world.ids(Query().where_tag("sft") | Query().where_tag("team-x")) == [
        world.sft_a.id,
        world.dpo.id,
    ]


def test_conditions_combine_with_and(world: World):
    q = Query().where_stage("production").where_metric("accuracy", "gte", 0.9).where_tag("sft")
    assert world.ids(q) == [world.sft_a.id]


def test_two_conditions_on_one_metric(world: World):
    q = Query().where_metric("accuracy", ">", 0.8).where_metric("accuracy", "<", 0.95)
    assert world.ids(q) == [world.sft_a.id]


def test_not_matches_exactly_what_the_query_does_not(world: World):
    w = world
    assert w.ids(~Query().where_metric("accuracy", ">=", 0.9)) == [w.dpo.id, w.rl.id]
    assert w.ids(~Query().where_metric("loss", "ne", 0.3)) == [
        w.sft_a.id,
        w.sft_b.id,
        w.dpo.id,
        w.rl.id,
    ]
    assert w.ids(~Query()) == []
    assert w.ids(~Query().where_tag("team-x")) == [w.sft_a.id, w.sft_b.id, w.rl.id, w.merge.id]


def test_or_and_nesting(world: World):
    w = world
    q = (Query().where_stage("production") | Query().where_recipe("dpo")) & ~Query().where_tag(
        "sft"
    )
    assert w.ids(q) == [w.dpo.id, w.merge.id]


def test_descendants_and_ancestors(world: World):
    w = world
    assert w.ids(Query().where_descendant_of(w.sft_a)) == [w.dpo.id, w.rl.id, w.merge.id]
    assert w.ids(Query().where_descendant_of(w.sft_a.id, max_depth=1)) == [w.dpo.id]
    assert w.ids(Query().where_descendant_of("alpha@1", max_depth=2)) == [
        w.dpo.id,
        w.rl.id,
        w.merge.id,
    ]
    assert w.ids(Query().where_ancestor_of(w.merge)) == [w.sft_a.id, w.sft_b.id, w.dpo.id]
    assert w.ids(Query().where_ancestor_of("gamma@latest", max_depth=1)) == [
        w.sft_b.id,
        w.dpo.id,
    ]
    assert w.ids(Query().where_descendant_of(w.rl)) == []
    both = Query().where_descendant_of(w.sft_a) | Query().where_ancestor_of(w.dpo)
    assert w.ids(both) == [w.sft_a.id, w.dpo.id, w.rl.id, w.merge.id]
    assert w.ids(~Query().where_descendant_of(w.dpo)) == [w.sft_a.id, w.sft_b.id, w.dpo.id]


def test_a_lineage_predicate_on_a_missing_version_is_not_found(world: World):
    with pytest.raises(NotFoundError):
        Query().where_descendant_of(999_999).using(world.registry).execute()
    with pytest.raises(NotFoundError):
        Query().where_ancestor_of("alpha@9.9").using(world.registry).count()


# --------------------------------------------------------------------------- ordering


def test_default_order_is_id_ascending_and_fields_sort(world: World):
    w = world
    assert w.ids(Query().order_by("id", "desc")) == [
        w.merge.id,
        w.rl.id,
        w.dpo.id,
        w.sft_b.id,
        w.sft_a.id,
    ]
    # Code-point order: upper case before lower case, whatever the database collation.
    assert w.ids(Query().order_by("model_name")) == [
        w.dpo.id,
        w.sft_a.id,
        w.sft_b.id,
        w.rl.id,
        w.merge.id,
    ]
    assert w.ids(Query().order_by("stage")) == [
        w.dpo.id,
        w.sft_b.id,
        w.sft_a.id,
        w.merge.id,
        w.rl.id,
    ]
    assert w.ids(Query().order_by("created_at", "desc")) == [
        w.merge.id,
        w.rl.id,
        w.dpo.id,
        w.sft_b.id,
        w.sft_a.id,
    ]
    assert w.ids(Query().order_by("updated_at").limit(1)) == [w.dpo.id]
    assert w.ids(Query().order_by("version", "desc").order_by("model_name")) == [
        w.sft_b.id,
        w.dpo.id,
        w.sft_a.id,
        w.rl.id,
        w.merge.id,
    ]


def test_versions_without_the_metric_sort_last_in_both_directions(world: World):
    w = world
    assert w.ids(Query().order_by_metric("loss")) == [
        w.merge.id,
        w.sft_a.id,
        w.sft_b.id,
        w.dpo.id,
        w.rl.id,
    ]
    assert w.ids(Query().order_by_metric("loss", "desc")) == [
        w.sft_a.id,
        w.merge.id,
        w.rl.id,
        w.dpo.id,
        w.sft_b.id,
    ]
    # Ties (sft_b and merge share 0.95) break by id in the direction of the last key.
    assert w.ids(Query().order_by_metric("accuracy", "desc")) == [
        w.merge.id,
        w.sft_b.id,
        w.sft_a.id,
        w.dpo.id,
        w.rl.id,
    ]
    assert w.ids(Query().order_by_metric("accuracy")) == [
        w.dpo.id,
        w.sft_a.id,
        w.sft_b.id,
        w.merge.id,
        w.rl.id,
    ]


def test_ordering_by_a_filtered_metric(world: World):
    q = Query().where_metric("accuracy", ">", 0.85).order_by_metric("accuracy", "desc")
    assert world.ids(q) == [world.merge.id, world.sft_b.id, world.sft_a.id]


def test_limit_offset_first_and_count(world: World):
    w = world
    q = Query(w.registry).order_by("id", "desc")
    assert [v.id for v in q.limit(2).offset(1).execute()] == [w.rl.id, w.dpo.id]
    assert q.limit(0).execute() == []
    assert q.offset(10).execute() == []
    assert q.first() == w.registry.get_version(w.merge.id)
    assert q.offset(4).first() == w.registry.get_version(w.sft_a.id)
    assert q.limit(0).first() is None
    assert q.count() == 5
    assert q.where_stage("production").limit(1).count() == 2
    assert Query(w.registry).where_tag("nothing").first() is None


# --------------------------------------------------------------------------- results


def test_results_carry_model_names_and_artifacts(world: World):
    (found,) = Query(world.registry).where_tag("sft").execute()
    assert found == world.registry.get_version(world.sft_a.id)
    assert found.model_name == "alpha"
    assert [a.storage_path for a in found.artifacts] == ["s3://b/a"]


def test_filter_maps(world: World):
    w = world
    assert [v.id for v in w.registry.query({"stage": "production", "min_accuracy": 0.9})] == [
        w.sft_a.id,
        w.merge.id,
    ]
    assert [v.id for v in w.registry.query({"recipe": "sl_basic", "max_accuracy": 0.9})] == [
        w.sft_a.id
    ]
    found = w.registry.query({"metric": [("accuracy", ">", 0.5), ("loss", "<=", 0.1)]})
    assert [v.id for v in found] == [w.merge.id]
    assert len(w.registry.query()) == 5
    assert [v.id for v in w.registry.query(Query().where_model_name("Beta"))] == [w.dpo.id]
    assert [v.id for v in w.registry.query(Query().where_model_name("Beta").spec)] == [w.dpo.id]


def test_module_level_query_and_an_unbound_query_use_the_default_registry(world: World):
    assert [v.id for v in cmr.query({"model_name": "gamma"})] == [world.merge.id]
    assert [v.id for v in Query().where_model_name("gamma").execute()] == [world.merge.id]
    assert Query().count() == 5


@pytest.mark.parametrize(
    "name", ["it's", 'quote"d', "x'); DROP TABLE cmr_model_versions; --", "精度 🎯", "%_\\"]
)
def test_metric_names_with_quotes_sql_or_unicode_are_data(registry: Registry, name: str):
    other = reg(registry, "m", "r", "b", metrics={"plain": 1.0})
    version = reg(registry, "m", "r", "b", metrics={name: 0.5})
    assert [v.id for v in Query(registry).where_metric(name, "==", 0.5).execute()] == [version.id]
    assert [v.id for v in Query(registry).order_by_metric(name).execute()] == [version.id, other.id]
    assert [v.id for v in registry.query({f"min_{name}": 0.1})] == [version.id]
    assert Query(registry).count() == 2  # the table is still there


def test_bad_filter_maps_raise_and_name_the_key(registry: Registry):
    cases: list[tuple[dict[str, Any], str]] = [
        ({"colour": "red"}, "colour"),
        ({"metric": ("accuracy", "approx", 0.9)}, "metric.op"),
        ({"min_accuracy": "high"}, "min_accuracy"),
        ({"stage": "shipped"}, "stage"),
    ]
    for filters, field in cases:
        with pytest.raises(ValidationError) as caught:
            registry.query(filters)
        assert field in caught.value.errors


# --------------------------------------------------------------------------- pages


def collect(query: Query, size: int) -> list[int]:
    ids: list[int] = []
    page = query.page(size)
    while True:
        assert len(page.items) <= size
        ids.extend(v.id for v in page.items)
        if page.next_cursor is None:
            return ids
        page = query.page(size, page.next_cursor)


ORDERINGS = [
    lambda q: q,
    lambda q: q.order_by("created_at", "desc"),
    lambda q: q.order_by("model_name").order_by("version", "desc"),
    lambda q: q.order_by("stage"),
    lambda q: q.order_by_metric("accuracy", "desc"),
    lambda q: q.order_by_metric("loss").order_by("model_name", "desc"),
    lambda q: q.where_metric("accuracy", ">", 0).order_by_metric("accuracy"),
]


def test_pages_follow_the_query_order(world: World):
    for make in ORDERINGS:
        query = make(Query(world.registry))
        expected = [v.id for v in query.execute()]
        for size in (1, 2, 5):
            assert collect(query.limit(1).offset(3), size) == expected


def test_the_last_non_empty_page_has_no_cursor(world: World):
    page = Query(world.registry).page(5)
    assert len(page.items) == 5
    assert page.next_cursor is None
    empty = Query(world.registry).where_tag("nothing").page(3)
    assert empty == Page(items=[], next_cursor=None)


def test_pages_are_stable_while_versions_are_registered(world: World):
    query = Query(world.registry).order_by("created_at", "desc")
    first = query.page(2)
    newer = reg(world.registry, "alpha", "sl_basic", "org/base-1")
    rest = collect_from(query, first, 2)
    assert newer.id not in rest
    assert [v.id for v in first.items] + rest == [
        world.merge.id,
        world.rl.id,
        world.dpo.id,
        world.sft_b.id,
        world.sft_a.id,
    ]


def collect_from(query: Query, page: Page, size: int) -> list[int]:
    ids: list[int] = []
    while page.next_cursor is not None:
        page = query.page(size, page.next_cursor)
        ids.extend(v.id for v in page.items)
    return ids


def test_a_cursor_from_another_ordering_or_a_broken_one_is_refused(world: World):
    cursor = Query(world.registry).order_by("created_at").page(1).next_cursor
    assert cursor is not None
    for bad in [cursor[:-3], "not-a-cursor", cursor + "x"]:
        with pytest.raises(ValidationError) as caught:
            Query(world.registry).order_by("created_at").page(1, bad)
        assert "cursor" in caught.value.errors
    with pytest.raises(ValidationError) as caught:
        Query(world.registry).order_by("created_at", "desc").page(1, cursor)
    assert "cursor" in caught.value.errors


# --------------------------------------------------------------------------- gates


def test_matches_and_unmet_conditions_inside_a_transaction(world: World):
    gate = (
        Query()
        .where_metric("accuracy", ">=", 0.93)
        .where_stage(["staging", "production"])
        .where_tag("sft")
        .spec
    )
    with store.engine.Database(world.registry.engine).read() as conn:
        assert store.queries.matches(conn, gate, world.sft_b.id) is False
        assert store.queries.unmet_conditions(conn, gate, world.sft_b.id) == ["tagged 'sft'"]
        assert store.queries.unmet_conditions(conn, gate, world.rl.id) == [
            "accuracy >= 0.93",
            "stage is staging or production",
            "tagged 'sft'",
        ]
        assert store.queries.unmet_conditions(conn, QuerySpec(), world.rl.id) == []
        loose = QuerySpec.from_json(Query().where_metric("accuracy", ">", 0.5).spec.to_json())
        assert store.queries.matches(conn, loose, world.merge.id) is True
        assert store.queries.matches(conn, loose, world.rl.id) is False
        with pytest.raises(NotFoundError):
            store.queries.unmet_conditions(conn, gate, 999_999)


def test_the_stage_enum_is_accepted(world: World):
    assert world.ids(Query().where_stage(Stage.ARCHIVED)) == [world.rl.id]
