"""Registration and promotion speed on SQLite and PostgreSQL, next to MLflow's model registry.

Run: ``.venv/bin/python bench/register.py [--n 400] [--promote-n 200] [--no-mlflow]``.

- register: one registration = one artifact, two metrics and one parent, auto-numbered,
  timed call by call; 1 process, then N spawned processes released together by a barrier
  (rate = all registrations / wall time from release to the last), first all into one
  model (numbering serialises them on the model's row), then each into a model of its own.
  MLflow: ``create_model_version`` with a source and three tags (two metrics, the parent),
  on the same server (a database of its own; psycopg2, which its stage transitions need)
  or a SQLite file of its own.
- reference: three bare one-row INSERTs and a COMMIT through the same driver and settings,
  the floor a registration stands on (fsync on PostgreSQL; WAL, synchronous=NORMAL SQLite);
  measured alone, and alternated call by call with single-process registrations, whose
  p50 ratio to it is the fair comparison on a machine whose load changes.
- promote: ``promote(v, "production", archive_existing=True)`` on a model with 10 and with
  1,000 versions, cycling through versions so that every call moves one version in and
  archives the incumbent. MLflow: ``transition_model_version_stage(...,
  archive_existing_versions=True)``.
- import: ``import crucible_model_registry`` in a fresh interpreter (median of 7), and the
  first ``cmr.register`` into a brand-new embedded registry (fresh ``CMR_HOME``, migration
  included; median of 5).

PostgreSQL databases are created for the run and dropped at the end (``--pg-url`` names
the maintenance database, default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crucible_model_registry import Registry
from crucible_model_registry.store.engine import create_registry_engine

MODEL = "bench-model"
TIMEOUT = 600.0


@dataclass
class Timing:
    """Latencies of one run (seconds) and the wall time it took."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def pct(self, q: int) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- the clients


class CmrClient:
    def __init__(self, url: str) -> None:
        self.registry = Registry.from_url(url)

    def setup_model(self, name: str) -> int:
        return self.register(name, "parent", -1)

    def register(self, name: str, tag: str, i: int, parent: int | None = None) -> int:
        v = self.registry.register(
            model_name=name,
            recipe="sl_basic",
            base_model="meta-llama/Llama-3.1-8B",
            training_config={"lr": 1e-4, "run": f"{name}/{tag}/{i}"},
            metrics={"accuracy": 0.9, "loss": 1.25},
            artifacts=[
                {
                    "type": "checkpoint",
                    "storage_backend": "s3",
                    "storage_path": f"s3://bucket/{name}/{tag}/{i}/model.safetensors",
                }
            ],
            parents=[parent] if parent is not None else None,
        )
        return v.id

    def promote(self, name: str, version: int) -> None:
        self.registry.promote(version, "production", archive_existing=True)

    def close(self) -> None:
        self.registry.close()


class MlflowClientAdapter:
    def __init__(self, url: str) -> None:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from mlflow import MlflowClient

        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            # Its stage transitions compare an integer column with a string parameter, which
            # only psycopg2's client-side binding lets through (psycopg 3 fails).
            url = parsed.set(drivername="postgresql+psycopg2").render_as_string(False)
        self.client = MlflowClient(tracking_uri=url, registry_uri=url)

    def setup_model(self, name: str) -> int:
        with contextlib.suppress(Exception):
            self.client.create_registered_model(name)
        return self.register(name, "parent", -1)

    def register(self, name: str, tag: str, i: int, parent: int | None = None) -> int:
        mv = self.client.create_model_version(
            name,
            source=f"s3://bucket/{name}/{tag}/{i}/model.safetensors",
            tags={"accuracy": "0.9", "loss": "1.25", "parent": str(parent)},
        )
        return int(mv.version)

    def promote(self, name: str, version: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.client.transition_model_version_stage(
                name, str(version), "Production", archive_existing_versions=True
            )

    def close(self) -> None:
        pass


CLIENTS: dict[str, Callable[[str], Any]] = {"cmr": CmrClient, "mlflow": MlflowClientAdapter}


# --------------------------------------------------------------------------- workloads


def _register_loop(client: Any, model: str, n: int, tag: str, parent: int) -> Timing:
    timing = Timing()
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        try:
            client.register(model, tag, i, parent)
        except Exception:
            timing.errors += 1
            continue
        timing.latencies.append(time.perf_counter() - t)
    timing.wall = time.perf_counter() - start
    return timing


def _worker(
    kind: str, url: str, model: str, n: int, tag: str, parent: int, barrier: Any, out: Any
) -> None:
    client = CLIENTS[kind](url)
    if model != MODEL:
        client.setup_model(model)
    _register_loop(client, model, 3, f"{tag}-warm", parent)
    barrier.wait(TIMEOUT)
    begin = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    timing = _register_loop(client, model, n, tag, parent)
    out.put((timing.latencies, begin, begin + timing.wall, timing.errors))
    client.close()


def _together(kind: str, url: str, n: int, processes: int, parent: int, shared: bool) -> Timing:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    per = max(n // processes, 1)
    procs = []
    for w in range(processes):
        model = MODEL if shared else f"{MODEL}-{w}"
        tag = f"{'shared' if shared else 'own'}-p{w}"
        args = (kind, url, model, per, tag, parent, barrier, out)
        procs.append(ctx.Process(target=_worker, args=args))
    for proc in procs:
        proc.start()
    parts = [out.get(timeout=TIMEOUT) for _ in procs]
    for proc in procs:
        proc.join(TIMEOUT)
    return Timing(
        latencies=[x for part in parts for x in part[0]],
        wall=max(p[2] for p in parts) - min(p[1] for p in parts),
        errors=sum(p[3] for p in parts),
    )


def bench_register(kind: str, url: str, n: int, processes: int) -> list[Timing]:
    """One process; N processes into one model; N processes, a model each."""
    client = CLIENTS[kind](url)
    parent = client.setup_model(MODEL)
    _register_loop(client, MODEL, 20, "warm", parent)
    single = _register_loop(client, MODEL, n, "single", parent)
    client.close()
    shared = _together(kind, url, n, processes, parent, shared=True)
    separate = _together(kind, url, n, processes, parent, shared=False)
    return [single, shared, separate]


@contextlib.contextmanager
def bare_committer(url: str, table: str) -> Iterator[Callable[[int], float]]:
    """A function doing one bare commit (three one-row INSERTs and a COMMIT) -> seconds."""
    # The registry's tuning (WAL and so on); a bare SQLite file is created here.
    engine = create_registry_engine(url, create_missing=True)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(f"CREATE TABLE {table} (a INTEGER, b VARCHAR(64))")
        raw.commit()

        def commit(i: int) -> float:
            t = time.perf_counter()
            if sqlite:  # the registry's engine leaves BEGIN to the caller on SQLite
                cursor.execute("BEGIN IMMEDIATE")
            for j in range(3):
                cursor.execute(f"INSERT INTO {table} VALUES ({i}, 'row {j}')")
            raw.commit()
            return time.perf_counter() - t

        yield commit
        cursor.execute(f"DROP TABLE {table}")
        raw.commit()
    engine.dispose()


def bench_bare_commit(url: str, n: int) -> Timing:
    """The floor under a registration: three one-row INSERTs and a COMMIT, no registry."""
    timing = Timing()
    with bare_committer(url, "bench_bare") as commit:
        start = time.perf_counter()
        timing.latencies = [commit(i) for i in range(n)]
        timing.wall = time.perf_counter() - start
    return timing


def bench_interleaved(url: str, n: int) -> tuple[Timing, Timing]:
    """A registration and a bare commit alternated call by call, so both see the same load
    (on a shared machine the floor moves by 2x within a minute)."""
    client = CmrClient(url)
    parent = client.setup_model("interleaved")
    ours, bare = Timing(), Timing()
    with bare_committer(url, "bench_bare_mixed") as commit:
        for i in range(20):
            client.register("interleaved", "warm", i, parent)
        for i in range(n):
            t = time.perf_counter()
            client.register("interleaved", "mixed", i, parent)
            ours.latencies.append(time.perf_counter() - t)
            bare.latencies.append(commit(i))
    client.close()
    return ours, bare


def bench_promote(kind: str, url: str, size: int, n: int) -> Timing:
    client = CLIENTS[kind](url)
    name = f"promote-{size}"
    parent = client.setup_model(name)
    versions = [parent] + [client.register(name, "p", i, parent) for i in range(size - 1)]
    cycle = versions[: min(len(versions), 50)]
    for v in cycle[:5]:
        client.promote(name, v)
    timing = Timing()
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        client.promote(name, cycle[(i + 5) % len(cycle)])
        timing.latencies.append(time.perf_counter() - t)
    timing.wall = time.perf_counter() - start
    client.close()
    return timing


# --------------------------------------------------------------------------- start-up


def _median_subprocess(code: str, runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Median of each number the snippet prints, over ``runs`` fresh interpreters."""
    samples: list[list[float]] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        ).stdout
        samples.append([float(x) for x in out.split()])
    return [statistics.median(col) for col in zip(*samples, strict=True)]


IMPORT = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
FIRST = """
import time
t0 = time.perf_counter()
import crucible_model_registry as cmr
t1 = time.perf_counter()
cmr.register(model_name="first", recipe="sft", base_model="org/base",
             training_config={"lr": 1e-4}, metrics={"accuracy": 0.9})
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def bench_first_registration(runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="cmr-first-") as home:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
            env["CMR_HOME"] = home
            samples.append(_median_subprocess(FIRST, 1, env))
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
    )


def bench_command_wall(runs: int) -> float:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import crucible_model_registry"], check=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


# --------------------------------------------------------------------------- databases


@contextlib.contextmanager
def postgres_database(admin_url: str, label: str) -> Iterator[str]:
    name = f"cmr_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def sqlite_database(workdir: Path, label: str) -> Iterator[str]:
    yield f"sqlite:///{workdir / f'{label}.db'}"


def migrated(url: str) -> str:
    registry = Registry.from_url(url)
    registry.migrate()
    registry.close()
    return url


# --------------------------------------------------------------------------- report


Row = tuple[str, str, str, str, str, str]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1e3:.2f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.0f}"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def print_table(rows: list[Row]) -> None:
    header: Row = ("case", "measure", "crucible", "MLflow", "target", "met")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    for row in [header, *rows]:
        cells = [
            row[i].ljust(widths[i]) if i in (0, 1, 4) else row[i].rjust(widths[i]) for i in range(6)
        ]
        print("  ".join(cells).rstrip())
        if row is header:
            print(line)
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="registrations per case")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--promote-n", type=int, default=200, help="promotions per case")
    parser.add_argument("--promote-sizes", default="10,1000")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-startup", action="store_true", help="skip the import timings")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    kinds = ["cmr"]
    if not args.no_mlflow and importlib.util.find_spec("mlflow") is not None:
        kinds.append("mlflow")
    sizes = [int(s) for s in args.promote_sizes.split(",")]
    rows: list[Row] = []

    with tempfile.TemporaryDirectory(prefix="cmr-bench-") as tmp:
        workdir = Path(tmp)
        dbs: list[tuple[str, Callable[[str], contextlib.AbstractContextManager[str]]]] = []
        if not args.no_sqlite:
            dbs.append(("SQLite", lambda label: sqlite_database(workdir, label)))
        if not args.no_postgres:
            dbs.append(("PostgreSQL", lambda label: postgres_database(args.pg_url, label)))

        for db_name, database in dbs:
            reg: dict[str, list[Timing]] = {}
            promo: dict[tuple[str, int], Timing] = {}
            for kind in kinds:
                with database(kind) as url:
                    if kind == "cmr":
                        migrated(url)
                    print(f"[{db_name}] {kind}: register ...", file=sys.stderr, flush=True)
                    reg[kind] = bench_register(kind, url, args.n, args.processes)
                    if kind == "cmr":
                        mixed = bench_interleaved(url, args.n)
                    for size in sizes:
                        print(f"[{db_name}] {kind}: promote, {size} versions ...", file=sys.stderr)
                        promo[(kind, size)] = bench_promote(kind, url, size, args.promote_n)
            with database("bare") as url:
                bare = bench_bare_commit(url, args.n)
            rows.extend(register_rows(db_name, reg, args.processes))
            rows.append(
                (f"{db_name} reference: 3 bare INSERTs + COMMIT", "p50 ms",
                 fmt(bare.pct(50), "ms"), "-", "the machine's floor", "")
            )  # fmt: skip
            ours, floor = mixed
            ratio = ours.pct(50) / floor.pct(50)
            ok = ratio <= 1.3 if db_name == "PostgreSQL" else None
            rows.append(
                (f"{db_name} register vs bare commit, interleaved", "p50 ms",
                 fmt(ours.pct(50), "ms"), fmt(floor.pct(50), "ms") + " (bare)",
                 f"{ratio:.2f}x; <= 1.3x", verdict(ok))
            )  # fmt: skip
            rows.extend(promote_rows(db_name, promo, sizes))

    if not args.no_startup:
        rows += startup_rows(with_mlflow="mlflow" in kinds)
    print_table(rows)
    print(
        f"register: {args.n} registrations per case (1 artifact, 2 metrics, 1 parent, "
        f"auto-numbered); promote: {args.promote_n} calls. "
        f"CPUs: {os.cpu_count()}, load average at the end: "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )


def startup_rows(*, with_mlflow: bool) -> list[Row]:
    print("[startup] import and first registration ...", file=sys.stderr, flush=True)
    import_s = _median_subprocess(IMPORT.format(module="crucible_model_registry"), 7)[0]
    command_s = bench_command_wall(7)
    mlflow_import = (
        _median_subprocess(IMPORT.format(module="mlflow"), 3)[0] if with_mlflow else None
    )
    first_import, first_register = bench_first_registration(5)
    return [
        ("import crucible_model_registry", "in-process s", fmt(import_s, "s"),
         fmt(mlflow_import, "s"), "< 0.3 s", verdict(import_s < 0.3)),
        ("python -c 'import ...'", "whole command s", fmt(command_s, "s"), "-", "", ""),
        ("first registration, new CMR_HOME", "register() s", fmt(first_register, "s"), "-",
         "< 0.5 s", verdict(first_register < 0.5)),
        ("  + the package import", "total s", fmt(first_import + first_register, "s"), "-",
         "", ""),
    ]  # fmt: skip


def register_rows(db: str, reg: dict[str, list[Timing]], processes: int) -> list[Row]:
    rows: list[Row] = []
    p50_target = 0.002 if db == "PostgreSQL" else 0.001
    labels = [
        "1 process",
        f"{processes} processes, one model",
        f"{processes} processes, a model each",
    ]
    for index, label in enumerate(labels):
        ours = reg["cmr"][index]
        theirs = reg["mlflow"][index] if "mlflow" in reg else None
        rate_target, rate_ok = "", None
        if index == 0 and theirs is not None and db == "PostgreSQL":
            rate_target = f">= 5x MLflow ({5 * theirs.rate:.0f}/s)"
            rate_ok = ours.rate >= 5 * theirs.rate
        errors = f" ({theirs.errors} errors)" if theirs and theirs.errors else ""
        rows.append(
            (f"{db} register, {label}", "registrations/s", fmt(ours.rate, "n"),
             (fmt(theirs.rate, "n") + errors) if theirs else "-", rate_target, verdict(rate_ok))
        )  # fmt: skip
        p50_ok = ours.pct(50) <= p50_target if index == 0 else None
        rows.append(
            ("", "p50 ms", fmt(ours.pct(50), "ms"), fmt(theirs.pct(50), "ms") if theirs else "-",
             f"<= {p50_target * 1e3:.0f} ms" if index == 0 else "", verdict(p50_ok))
        )  # fmt: skip
        rows.append(
            ("", "p95 ms", fmt(ours.pct(95), "ms"), fmt(theirs.pct(95), "ms") if theirs else "-",
             "", "")
        )  # fmt: skip
    return rows


def promote_rows(db: str, promo: dict[tuple[str, int], Timing], sizes: list[int]) -> list[Row]:
    rows: list[Row] = []
    smallest = promo[("cmr", min(sizes))]
    for size in sizes:
        ours = promo[("cmr", size)]
        theirs = promo.get(("mlflow", size))
        target, ok = "", None
        if size >= 1000:
            target = f"<= 3 ms, <= at {min(sizes)}"
            # "No slower": within noise (10% or 0.1 ms) of the small model's p50.
            ok = ours.pct(50) <= 0.003 and ours.pct(50) <= max(
                smallest.pct(50) * 1.1, smallest.pct(50) + 0.0001
            )
        rows.append(
            (f"{db} promote, {size} versions", "p50 ms", fmt(ours.pct(50), "ms"),
             fmt(theirs.pct(50), "ms") if theirs else "-", target, verdict(ok))
        )  # fmt: skip
        rows.append(
            ("", "p95 ms", fmt(ours.pct(95), "ms"), fmt(theirs.pct(95), "ms") if theirs else "-",
             "", "")
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
