"""Queries reach the database a constant number of times, whatever the result size."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event

from crucible_model_registry import Query, Registry


@contextlib.contextmanager
def statements(registry: Registry) -> Iterator[list[str]]:
    """Every SQL statement sent on the registry's engine while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(registry.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(registry.engine, "before_cursor_execute", record)


def register_many(registry: Registry, model: str, count: int) -> None:
    for i in range(count):
        registry.register(
            model_name=model,
            recipe="sl_basic",
            base_model="org/base",
            training_config={"model": model, "i": i},
            metrics={"accuracy": i / 100},
            tags=["bulk"],
            artifacts=[
                {"type": "checkpoint", "storage_backend": "s3", "storage_path": f"s3://b/{i}"},
                {"type": "config", "storage_backend": "s3", "storage_path": f"s3://b/{i}.json"},
            ],
            parents=[f"{model}@1"] if i else None,
        )


RUNS: dict[str, Callable[[Query, str], object]] = {
    "execute": lambda q, m: q.execute(),
    "by metric": lambda q, m: q.order_by_metric("accuracy", "desc").execute(),
    "tag and metric": lambda q, m: q.where_tag("bulk").where_metric("accuracy", ">=", 0).execute(),
    "descendants": lambda q, m: q.where_descendant_of(f"{m}@1").execute(),
    "count": lambda q, m: q.count(),
    "first": lambda q, m: q.first(),
    "page": lambda q, m: q.page(1000),
    "page by time": lambda q, m: q.order_by("created_at", "desc").page(1000),
}


def test_round_trips_do_not_grow_with_the_result(registry: Registry):
    sizes = {"few": 2, "some": 8, "many": 60}
    for model, size in sizes.items():
        register_many(registry, model, size)
    for name, run in RUNS.items():
        counts = {}
        for model, size in sizes.items():
            query = Query(registry).where_model_name(model)
            with statements(registry) as seen:
                result = run(query, model)
            if isinstance(result, list):
                assert len(result) in (size, size - 1), name  # descendants exclude the root
            counts[model] = len(seen)
        assert counts["few"] == counts["some"] == counts["many"], (name, counts)
        # A BEGIN on SQLite, the SELECT and one artifact SELECT; a lineage predicate adds
        # the lookups that resolve its "model@version" ref (model, alias, version).
        assert counts["many"] <= (6 if name == "descendants" else 3), (name, counts)
