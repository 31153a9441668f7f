"""Exclusive stages and metric gates under real concurrent processes on PostgreSQL.

Eight processes promote their own versions into an exclusive, gated ``production`` while
two others keep pushing versions' metrics below and back above the gate. Triggers (test
instrumentation, created and dropped here) append every metric write and every stage
transition to an audit table whose sequence numbers are drawn while the writer holds the
version's row lock, so replaying it in sequence order shows the metrics each promotion
saw. A thread samples the production count from its own connection during the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import crucible_model_registry as cmr
from crucible_model_registry import PromotionDeniedError, Registry
from crucible_model_registry.store.tables import metadata

MODEL = "gated"
GATE = 0.9
PROMOTERS = 8
VERSIONS_EACH = 2
UPDATERS = 2
ROUNDS = 12
UPDATES = 80
GOOD, BAD = 0.95, 0.85

AUDIT_DDL = [
    "CREATE TABLE gov_audit (seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL,"
    " version_id BIGINT NOT NULL, value DOUBLE PRECISION, stage TEXT)",
    """CREATE FUNCTION gov_audit_metric() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.name = 'accuracy' THEN
           INSERT INTO gov_audit (kind, version_id, value)
           VALUES ('metric', NEW.version_id, NEW.value);
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE FUNCTION gov_audit_transition() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO gov_audit (kind, version_id, stage)
         VALUES ('stage', NEW.version_id, NEW.to_stage);
         RETURN NEW;
       END $$""",
    "CREATE TRIGGER gov_audit_metric AFTER INSERT ON cmr_version_metrics"
    " FOR EACH ROW EXECUTE FUNCTION gov_audit_metric()",
    "CREATE TRIGGER gov_audit_transition AFTER INSERT ON cmr_stage_transitions"
    " FOR EACH ROW EXECUTE FUNCTION gov_audit_transition()",
]
AUDIT_DROP = [
    "DROP TRIGGER IF EXISTS gov_audit_metric ON cmr_version_metrics",
    "DROP TRIGGER IF EXISTS gov_audit_transition ON cmr_stage_transitions",
    "DROP FUNCTION IF EXISTS gov_audit_metric()",
    "DROP FUNCTION IF EXISTS gov_audit_transition()",
    "DROP TABLE IF EXISTS gov_audit",
]

AuditRow = tuple[str, int, float | None, str | None]


# --------------------------------------------------------------------------- checkers


def gate_violations(audit: Iterable[AuditRow], gate: float) -> list[str]:
    """Promotions to production of a version whose latest accuracy was below the gate."""
    accuracy: dict[int, float] = {}
    found = []
    for kind, version_id, value, stage in audit:
        if kind == "metric":
            assert value is not None
            accuracy[version_id] = value
        elif stage == "production" and accuracy.get(version_id, float("-inf")) < gate:
            found.append(f"version {version_id} promoted at accuracy {accuracy.get(version_id)}")
    return found


def most_in_production(audit: Iterable[AuditRow]) -> int:
    """The largest number of versions in production at once, replaying the transitions."""
    stage: dict[int, str] = {}
    most = 0
    for kind, version_id, _value, to_stage in audit:
        if kind == "stage":
            assert to_stage is not None
            stage[version_id] = to_stage
            most = max(most, sum(s == "production" for s in stage.values()))
    return most


def test_the_checkers_catch_what_they_look_for() -> None:
    # A log that breaks both rules: the checks below can fail.
    audit: list[AuditRow] = [
        ("metric", 1, GOOD, None),
        ("metric", 2, GOOD, None),
        ("stage", 1, None, "production"),
        ("metric", 2, BAD, None),
        ("stage", 2, None, "production"),
    ]
    assert gate_violations(audit, GATE) == ["version 2 promoted at accuracy 0.85"]
    assert most_in_production(audit) == 2


# --------------------------------------------------------------------------- workers


def _ready(url: str, ready: Any, start: Any) -> Registry:
    registry = Registry.from_url(url)
    registry.get_model(MODEL)  # connect and check the schema before the race starts
    ready.put(1)
    start.wait(120)
    return registry


def _promoter(url: str, version_ids: list[int], ready: Any, start: Any, results: Any) -> None:
    outcomes: list[object] = []
    cmr.telemetry.attach(
        "outcomes",
        ("crucible_model_registry", "promote"),
        lambda _event, _measurements, meta: outcomes.append(meta["outcome"]),
    )
    registry = _ready(url, ready, start)
    try:
        for _ in range(ROUNDS):
            for version_id in version_ids:
                with contextlib.suppress(PromotionDeniedError):
                    registry.promote(version_id, "production", reason="worker")
        error = None
    except Exception as exc:
        error = repr(exc)
    finally:
        registry.close()
    results.put(("promoter", outcomes.count("promoted"), outcomes.count("denied"), error))


def _updater(
    url: str, version_ids: list[int], seed: int, ready: Any, start: Any, results: Any
) -> None:
    rng = random.Random(seed)
    registry = _ready(url, ready, start)
    try:
        for _ in range(UPDATES):
            registry.update_metrics(rng.choice(version_ids), {"accuracy": rng.choice([GOOD, BAD])})
        results.put(("updater", UPDATES, 0, None))
    except Exception as exc:
        results.put(("updater", 0, 0, repr(exc)))
    finally:
        registry.close()


# --------------------------------------------------------------------------- the test


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    engine = create_engine(postgres_url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for statement in AUDIT_DROP + AUDIT_DDL:
            conn.execute(text(statement))
    try:
        yield postgres_url
    finally:
        with engine.begin() as conn:
            for statement in AUDIT_DROP:
                conn.execute(text(statement))
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_exclusive_gated_production_holds_under_concurrent_promotions_and_updates(
    pg_url: str,
) -> None:
    registry = Registry.from_url(pg_url)
    ids = [
        registry.register(
            model_name=MODEL,
            recipe="sl_basic",
            base_model="org/base",
            training_config={"run": n},
            metrics={"accuracy": GOOD},
        ).id
        for n in range(PROMOTERS * VERSIONS_EACH)
    ]
    registry.set_promotion_policy(
        MODEL,
        cmr.PromotionPolicy(
            gates={"production": cmr.Query().where_metric("accuracy", "gte", GATE)},
            exclusive=["production"],
        ),
    )
    model_id = registry.get_model(MODEL).id
    registry.close()

    ctx = multiprocessing.get_context("spawn")
    ready, start, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(
            target=_promoter,
            args=(pg_url, ids[i * VERSIONS_EACH : (i + 1) * VERSIONS_EACH], ready, start, results),
        )
        for i in range(PROMOTERS)
    ] + [
        ctx.Process(target=_updater, args=(pg_url, ids, seed, ready, start, results))
        for seed in range(UPDATERS)
    ]
    for worker in workers:
        worker.start()

    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        query = text(
            "SELECT count(*) FROM cmr_model_versions WHERE model_id = :m AND stage = 'production'"
        )
        with engine.connect() as conn:
            while not done.wait(0.002):
                samples.append(conn.execute(query, {"m": model_id}).scalar_one())
        engine.dispose()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for _ in workers:
            ready.get(timeout=120)
        start.set()
        reports = [results.get(timeout=180) for _ in workers]
        for worker in workers:
            worker.join(60)
    finally:
        done.set()
        sampler.join(30)
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(10)

    assert [r[3] for r in reports] == [None] * len(workers)
    assert all(w.exitcode == 0 for w in workers)
    promoted = sum(r[1] for r in reports if r[0] == "promoter")
    denied = sum(r[2] for r in reports if r[0] == "promoter")
    # The run exercised both paths: swaps happened and the gate refused some promotions.
    assert promoted > PROMOTERS
    assert denied > 0

    assert max(samples) == 1
    assert len(samples) > 100

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        audit: list[AuditRow] = [
            (r.kind, r.version_id, r.value, r.stage)
            for r in conn.execute(text("SELECT * FROM gov_audit ORDER BY seq"))
        ]
        in_production = conn.execute(
            text("SELECT count(*) FROM cmr_model_versions WHERE stage = 'production'")
        ).scalar_one()
    engine.dispose()
    assert in_production == 1
    assert most_in_production(audit) == 1
    assert sum(1 for row in audit if row[3] == "production") == promoted
    assert gate_violations(audit, GATE) == []
