"""A parent deleted while a child registers (issue 14, finding 6): NotFoundError, always.

PostgreSQL used to check the parents without locking them, so a delete committed between
that check and the edge inserts surfaced as a ``DuplicateVersionError`` for a version that
did not exist, or as a raw foreign-key error. The test holds the delete open in its own
transaction, starts the registration in another process, waits until that process is
blocked behind the delete (PostgreSQL: on a row lock; SQLite: on the write lock), then
commits the delete: the interleaving the audit hit 16 times in 300 runs, every time.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
from sqlalchemy import text

from crucible_model_registry import NotFoundError, Registry

MODEL = "parent-race"
TIMEOUT = 60.0


def register_child(url: str, parent_id: int, version: str | None, about_to: Any, results: Any):
    registry = Registry.from_url(url)
    try:
        registry.list_models()  # connect and check the schema first
        about_to.set()
        child = registry.register(
            model_name=MODEL,
            version=version,
            recipe="sft",
            base_model="b",
            training_config={"child": True},
            parents=[parent_id],
        )
        results.put(("registered", child.id))
    except NotFoundError as exc:
        results.put(("not_found", exc.kind, exc.ref))
    except Exception as exc:
        results.put(("error", type(exc).__name__, str(exc)))
    finally:
        registry.close()


def _wait_until_blocked(registry: Registry, *, postgres: bool) -> None:
    if not postgres:
        time.sleep(1.0)  # SQLite has no view of waiters: it queues on BEGIN IMMEDIATE
        return
    deadline = time.monotonic() + TIMEOUT
    with registry.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.commit()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the registration never waited for the delete")


@pytest.mark.parametrize("version", ["child", None], ids=["explicit-version", "numbered"])
def test_a_parent_deleted_while_a_child_registers_gives_not_found(
    registry: Registry, db_url: str, version: str | None
):
    parent = registry.register(
        model_name=MODEL, version="parent", recipe="sft", base_model="b", training_config={}
    )
    ctx = multiprocessing.get_context("spawn")
    about_to, results = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=register_child, args=(db_url, parent.id, version, about_to, results))
    postgres = registry.engine.dialect.name == "postgresql"
    with registry.engine.connect() as plain:
        conn = plain.execution_options(cmr_write=True)  # SQLite: BEGIN IMMEDIATE
        with conn.begin():
            conn.execute(text("DELETE FROM cmr_model_versions WHERE id = :id"), {"id": parent.id})
            child.start()
            try:
                assert about_to.wait(TIMEOUT)
                _wait_until_blocked(registry, postgres=postgres)
            except BaseException:
                child.kill()
                raise
    outcome = results.get(timeout=TIMEOUT)
    child.join(TIMEOUT)

    assert outcome == ("not_found", "version", parent.id)
    assert [v.version for v in registry.query({"model_name": MODEL})] == []


ROUNDS = 25


def delete_parents(url: str, ids: list[int], barrier: Any, results: Any) -> None:
    registry = Registry.from_url(url)
    outcomes = []
    try:
        registry.list_models()
        for parent_id in ids:
            barrier.wait(TIMEOUT)
            try:
                registry.delete_version(parent_id, force=True)
                outcomes.append("deleted")
            except Exception as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
    finally:
        results.put(("deleter", outcomes))
        registry.close()


def register_children(url: str, ids: list[int], barrier: Any, results: Any) -> None:
    registry = Registry.from_url(url)
    outcomes = []
    try:
        registry.list_models()
        for i, parent_id in enumerate(ids):
            barrier.wait(TIMEOUT)
            try:
                registry.register(
                    model_name=MODEL,
                    version=f"child-{i}" if i % 2 else None,
                    recipe="sft",
                    base_model="b",
                    training_config={"child": i},
                    parents=[parent_id],
                )
                outcomes.append("registered")
            except NotFoundError as exc:
                outcomes.append("not_found" if exc.ref == parent_id else f"NotFound {exc.ref}")
            except Exception as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
    finally:
        results.put(("registrar", outcomes))
        registry.close()


def test_racing_parent_deletes_and_child_registrations_never_deadlock_or_mislabel(
    registry: Registry, db_url: str
):
    # delete_version locks the model, then the version; a registration of a child in the
    # same model must not lock them the other way round.
    parents = [
        registry.register(
            model_name=MODEL, version=f"parent-{i}", recipe="sft", base_model="b",
            training_config={"parent": i},
        ).id
        for i in range(ROUNDS)
    ]  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(db_url, parents, barrier, results))
        for target in (delete_parents, register_children)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = dict(results.get(timeout=TIMEOUT * 2) for _ in procs)
    finally:
        for p in procs:
            p.join(TIMEOUT)
            if p.is_alive():
                p.kill()

    assert outcomes["deleter"] == ["deleted"] * ROUNDS
    assert set(outcomes["registrar"]) <= {"registered", "not_found"}, outcomes["registrar"]
