"""Dedup, numbering and promotion under real separate processes that collide on purpose.

Workers are separate interpreters (the ``spawn`` start method, one pool for the module);
each task builds its own ``Registry.from_url``, connects and checks the schema, then waits
at a barrier so that the writes really start together. Results come back through the
pool's result queue as plain tuples. PostgreSQL runs 8 processes, the embedded SQLite (a
file URL) 4.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crucible_model_registry import (
    DuplicateConfigError,
    Registry,
    Stage,
    ValidationError,
)
from crucible_model_registry.storage import LocalStorage
from crucible_model_registry.store.tables import PENDING_UPLOADS, TRANSITIONS, VERSIONS

MODEL = "concurrent-sft"
BASE = "meta-llama/Llama-3.1-8B"
RUN_CONFIG = {"lr": 1e-4, "epochs": 3, "data": "s3://bucket/train.jsonl"}
PER_PROCESS = 10
TIMEOUT = 120.0

Result = tuple[Any, ...]


# --------------------------------------------------------------------------- workers (in the child)


def _ready(url: str, barrier: Any) -> Registry:
    registry = Registry.from_url(url)
    registry.list_models()  # connect and check the schema before the start line
    barrier.wait(TIMEOUT)
    return registry


def register_same_run(url: str, barrier: Any, worker: int) -> Result:
    registry = _ready(url, barrier)
    try:
        v = registry.register(
            model_name=MODEL,
            version=f"v{worker}",
            recipe="sl_basic",
            base_model=BASE,
            training_config=RUN_CONFIG,
        )
        return ("created", worker, v.id, v.version)
    except DuplicateConfigError as exc:
        return ("duplicate", worker, exc.existing.id, exc.existing.version)
    except Exception as exc:
        return ("error", worker, type(exc).__name__, str(exc))
    finally:
        registry.close()


def register_numbered(url: str, barrier: Any, worker: int) -> Result:
    registry = _ready(url, barrier)
    try:
        versions = [
            registry.register(
                model_name=MODEL,
                recipe="sl_basic",
                base_model=BASE,
                training_config={"worker": worker, "run": i},
            ).version
            for i in range(PER_PROCESS)
        ]
        return ("numbered", worker, versions)
    except Exception as exc:
        return ("error", worker, type(exc).__name__, str(exc))
    finally:
        registry.close()


def promote_to_production(url: str, barrier: Any, worker: int) -> Result:
    registry = _ready(url, barrier)
    try:
        v = registry.promote(f"{MODEL}@v{worker}", "production", archive_existing=True)
        return ("promoted", worker, v.id, v.stage.value)
    except Exception as exc:
        return ("error", worker, type(exc).__name__, str(exc))
    finally:
        registry.close()


def upload_same_name(url: str, barrier: Any, worker: int, base_path: str, source: str) -> Result:
    # Every worker uploads different bytes under the same name: at most one may be recorded.
    registry = Registry.from_url(url, storage=LocalStorage(base_path))
    registry.list_models()
    barrier.wait(TIMEOUT)
    try:
        artifact = registry.upload_artifact(
            f"{MODEL}@up", "checkpoint", f"{source}/worker-{worker}.bin", name="model.bin"
        )
        return ("uploaded", worker, artifact.id, artifact.checksum)
    except ValidationError as exc:
        return ("refused", worker, str(exc))
    except Exception as exc:
        return ("error", worker, type(exc).__name__, str(exc))
    finally:
        registry.close()


def _in_process(
    target: Callable[..., Result], url: str, barrier: Any, worker: int, *extra: Any
) -> Any:
    return os.getpid(), target(url, barrier, worker, *extra)


# --------------------------------------------------------------------------- driver (in pytest)


class Workers:
    """Spawned worker processes, kept for the module so each test does not pay their start-up.

    A worker blocked at the barrier takes no second task, so ``n`` tasks land on ``n``
    distinct processes.
    """

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.size = size
        self.manager = ctx.Manager()
        self.pool = ctx.Pool(size)

    def run_together(
        self, target: Callable[..., Result], url: str, n: int, *extra: Any
    ) -> list[Result]:
        """Run ``target`` in ``n`` processes released together; their results, by worker."""
        assert n <= self.size
        barrier = self.manager.Barrier(n)
        pending = [
            self.pool.apply_async(_in_process, (target, url, barrier, i, *extra)) for i in range(n)
        ]
        try:
            done = [p.get(timeout=TIMEOUT) for p in pending]
        except multiprocessing.TimeoutError:
            pytest.fail(f"a worker did not finish within {TIMEOUT} s")
        assert len({pid for pid, _ in done}) == n  # n distinct processes
        results = [result for _, result in done]
        assert [r for r in results if r[0] == "error"] == []
        return sorted(results, key=lambda r: r[1])

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()
        self.manager.shutdown()


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    pool = Workers(8)
    yield pool
    pool.close()


def process_count(db_url: str) -> int:
    return 8 if db_url.startswith("postgresql") else 4


def version_strings(registry: Registry) -> list[str]:
    with registry.engine.connect() as conn:
        return list(conn.execute(select(VERSIONS.c.version)).scalars())


# --------------------------------------------------------------------------- the guarantees


def test_one_training_run_makes_one_version(
    registry: Registry, db_url: str, workers: Workers
) -> None:
    n = process_count(db_url)
    results = workers.run_together(register_same_run, db_url, n)
    created = [r for r in results if r[0] == "created"]
    duplicates = [r for r in results if r[0] == "duplicate"]
    assert len(created) == 1
    assert len(duplicates) == n - 1
    _, _, winner_id, winner_version = created[0]
    assert {(r[2], r[3]) for r in duplicates} == {(winner_id, winner_version)}
    assert version_strings(registry) == [winner_version]
    assert registry.get_version(winner_id).config_hash == registry.hash_config(RUN_CONFIG)


def test_auto_numbering_has_no_gaps_or_repeats(
    registry: Registry, db_url: str, workers: Workers
) -> None:
    n = process_count(db_url)
    results = workers.run_together(register_numbered, db_url, n)
    handed_out = [v for r in results for v in r[2]]
    expected = sorted(str(i) for i in range(1, n * PER_PROCESS + 1))
    assert sorted(handed_out) == expected
    assert sorted(version_strings(registry)) == expected
    for r in results:  # each process saw its own numbers rise
        assert [int(v) for v in r[2]] == sorted(int(v) for v in r[2])


def _transitions(registry: Registry) -> list[tuple[int, str | None, str]]:
    t = TRANSITIONS.c
    with registry.engine.connect() as conn:
        rows = conn.execute(select(t.version_id, t.from_stage, t.to_stage).order_by(t.id))
        return [(r[0], r[1], r[2]) for r in rows]


def _count(items: Iterable[Any], value: Any) -> int:
    return sum(1 for item in items if item == value)


def test_concurrent_promotions_leave_one_in_production(
    registry: Registry, db_url: str, workers: Workers
) -> None:
    n = process_count(db_url)
    ids = [
        registry.register(
            model_name=MODEL,
            version=f"v{i}",
            recipe="sl_basic",
            base_model=BASE,
            training_config={"run": i},
        ).id
        for i in range(n)
    ]
    results = workers.run_together(promote_to_production, db_url, n)
    assert all(r[0] == "promoted" and r[3] == "production" for r in results)
    stages = {i: registry.get_version(i).stage for i in ids}
    in_production = [i for i, stage in stages.items() if stage is Stage.PRODUCTION]
    assert len(in_production) == 1
    assert all(stages[i] is Stage.ARCHIVED for i in ids if i not in in_production)

    history = _transitions(registry)
    moves = [(f, to) for _, f, to in history]
    assert _count(moves, (None, "experiment")) == n
    assert _count(moves, ("experiment", "production")) == n
    assert _count(moves, ("production", "archived")) == n - 1
    assert len(history) == 3 * n - 1
    # The winner is the last to be promoted; everyone else was archived exactly once after.
    promoted_order = [v for v, f, to in history if (f, to) == ("experiment", "production")]
    assert promoted_order[-1] == in_production[0]
    for version_id in ids:
        own = registry.stage_history(version_id)
        expected = ["experiment", "production"]
        if version_id != in_production[0]:
            expected.append("archived")
        assert [t.to_stage.value for t in own] == expected


def test_racing_uploads_of_one_name_record_one_artifact_with_its_own_bytes(
    registry: Registry, db_url: str, workers: Workers, tmp_path: Path
) -> None:
    n = process_count(db_url)
    registry.register(
        model_name=MODEL, version="up", recipe="sl_basic", base_model=BASE, training_config={}
    )
    source = tmp_path / "sources"
    source.mkdir()
    sums = {}
    for i in range(n):  # 4 MiB each, different per worker, so the upload takes a while
        data = hashlib.sha256(str(i).encode()).digest() * (4 * 1024 * 1024 // 32)
        (source / f"worker-{i}.bin").write_bytes(data)
        sums[i] = hashlib.sha256(data).hexdigest()
    base = tmp_path / "store"

    results = workers.run_together(upload_same_name, db_url, n, str(base), str(source))

    uploaded = [r for r in results if r[0] == "uploaded"]
    refused = [r for r in results if r[0] == "refused"]
    assert len(uploaded) == 1, results
    assert len(refused) == n - 1
    assert all("model.bin" in r[2] for r in refused)
    _, winner, artifact_id, checksum = uploaded[0]
    assert checksum == sums[winner]
    [artifact] = registry.get_version(f"{MODEL}@up").artifacts
    assert artifact.id == artifact_id
    # The stored bytes are the winner's: nobody overwrote or deleted them.
    stored = base / f"{MODEL}/up/checkpoint/model.bin"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sums[winner]
    assert [p.name for p in stored.parent.iterdir()] == ["model.bin"]
    with registry.engine.connect() as conn:
        assert conn.execute(select(PENDING_UPLOADS)).all() == []
