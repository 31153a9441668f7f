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
