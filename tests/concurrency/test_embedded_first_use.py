"""Several processes meeting a brand-new embedded registry at once all get a working one."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from crucible_model_registry.store.tables import VERSIONS

WORKERS = 4


def _first_registration(home: str, barrier: Any, results: Any) -> None:
    os.environ["CMR_HOME"] = home
    import crucible_model_registry as cmr

    barrier.wait()
    try:
        version = cmr.register(
            model_name="m", recipe="r", base_model="b", training_config={"pid": os.getpid()}
        )
        results.put(("ok", version.version))
    except Exception as exc:  # sent back as data: the parent asserts on it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_concurrent_first_use_migrates_once_and_registers_every_version(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    home = str(tmp_path / "fresh-home")
    workers = [
        ctx.Process(target=_first_registration, args=(home, barrier, results))
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == [("ok", str(n)) for n in range(1, WORKERS + 1)]
    engine = create_engine(f"sqlite:///{home}/registry.db")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(VERSIONS)).scalar() == WORKERS
    engine.dispose()
