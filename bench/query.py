"""Query DSL speed on PostgreSQL: 1,000,000 versions over 10,000 models, against 10,000.

Run: ``.venv/bin/python bench/query.py [--url URL] [--versions N] [--models N] [--runs N]
[--no-mlflow] [--keep]``. ``--url`` names a PostgreSQL server's maintenance database
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); the script creates its
own databases there (``cmr_bench_query_large``, ``_small``, ``_mlflow``), bulk-loads them
with ``COPY``, and drops them at the end unless ``--keep`` (then a later run reuses them).

Prints, for the large and the small registry, p50/p95 over ``--runs`` runs of each query
through the public ``Query`` API (SQL, decoding, the artifact batch, all included); the
first, median and last page of ``page(1000)`` walks over every version; ``EXPLAIN
ANALYZE`` of the metric queries; and, when ``mlflow`` is importable, MLflow's
``search_model_versions`` on its own schema in the same server with the same number of
versions, names and version tags, with the ratio to ours.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from crucible_model_registry import Query, Registry, store
from crucible_model_registry.domain.query_spec import encode_cursor

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
STAGES = ["experiment", "staging", "production", "archived"]
STAGE_WEIGHTS = [60, 15, 10, 15]
RECIPES = ["sl_basic", "dpo", "rl", "distill", "merge", "quant", "lora", "cpt"]
RECIPE_WEIGHTS = [25, 15, 10, 10, 10, 10, 10, 10]
BASES = [f"org/base-{i:02d}" for i in range(20)]
VERSION_TAGS = [f"tag-{i:02d}" for i in range(20)]
MODEL_TAGS = [f"team-{i}" for i in range(10)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 100_000


# --------------------------------------------------------------------------- databases


def admin_engine(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT")


def database_url(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def exists(admin: Engine, name: str) -> bool:
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        return found.first() is not None


def create_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))


def drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Loader:
    """COPY text files into tables in order (parents first), in one transaction."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tables: list[tuple[str, list[str], Path]] = []

    def file(self, table: str, columns: list[str]) -> IO[str]:
        path = self.workdir / f"{table}.tsv"
        self.tables.append((table, columns, path))
        return path.open("w")

    def copy(self, engine: Engine) -> None:
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            for table, columns, path in self.tables:
                with (
                    cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
                    path.open("rb") as source,
                ):
                    while block := source.read(8 << 20):
                        copy.write(block)
            raw.commit()
        finally:
            raw.close()


# --------------------------------------------------------------------------- data


@dataclass
class Version:
    id: int
    model: int
    number: int
    stage: str
    recipe: str
    base: str
    metrics: dict[str, float]
    tags: list[str]


def generate(versions: int, models: int, seed: int = 42) -> Iterator[list[Version]]:
    """Versions in chunks: random models (about versions/models each), skewed stages."""
    rng = random.Random(seed)
    numbers = [0] * (models + 1)
    for start in range(1, versions + 1, CHUNK):
        n = min(CHUNK, versions + 1 - start)
        stages = rng.choices(STAGES, STAGE_WEIGHTS, k=n)
        recipes = rng.choices(RECIPES, RECIPE_WEIGHTS, k=n)
        chunk = []
        for i in range(n):
            model = rng.randrange(models) + 1
            numbers[model] += 1
            metrics = {}
            if rng.random() < 0.9:
                metrics["accuracy"] = round(rng.random(), 4)
            if rng.random() < 0.7:
                metrics["loss"] = round(rng.random() * 3, 4)
            if rng.random() < 0.3:
                metrics["bleu"] = round(rng.random() * 50, 2)
            tags = rng.sample(VERSION_TAGS, rng.choice((0, 1, 1, 2)))
            chunk.append(
                Version(
                    start + i,
                    model,
                    numbers[model],
                    stages[i],
                    recipes[i],
                    BASES[rng.randrange(len(BASES))],
                    metrics,
                    tags,
                )
            )
        yield chunk


def model_name(model: int) -> str:
    return f"model-{model:05d}"


def stamp(version_id: int) -> str:
    return (T0 + timedelta(seconds=version_id)).isoformat(sep=" ")


def load_registry(url: str, versions: int, models: int) -> None:
    """A migrated registry with the generated versions, loaded with COPY."""
    registry = Registry.from_url(url)
    registry.migrate()
    engine = registry.engine
    with tempfile.TemporaryDirectory(prefix="cmr-bench-") as workdir:
        loader = Loader(Path(workdir))
        model_cols = ["id", "name", "tags", "metadata", "version_seq", "created_at", "updated_at"]
        with (
            loader.file("cmr_models", model_cols) as model_file,
            loader.file("cmr_model_tags", ["model_id", "tag"]) as model_tag_file,
        ):
            rng = random.Random(7)
            for model in range(1, models + 1):
                tags = [rng.choice(MODEL_TAGS)] if rng.random() < 0.5 else []
                model_file.write(
                    f"{model}\t{model_name(model)}\t{json.dumps(tags)}\t{{}}\t0\t"
                    f"{stamp(0)}\t{stamp(0)}\n"
                )
                model_tag_file.writelines(f"{model}\t{t}\n" for t in tags)
        version_cols = [
            "id",
            "model_id",
            "version",
            "stage",
            "recipe",
            "base_model",
            "config_hash",
            "training_config",
            "metrics",
            "tags",
            "created_at",
            "updated_at",
        ]
        artifact_cols = [
            "id",
            "version_id",
            "type",
            "storage_backend",
            "storage_path",
            "created_at",
        ]
        with (
            loader.file("cmr_model_versions", version_cols) as version_file,
            loader.file("cmr_version_metrics", ["version_id", "name", "value"]) as metric_file,
            loader.file("cmr_version_tags", ["version_id", "tag"]) as tag_file,
            loader.file("cmr_artifacts", artifact_cols) as artifact_file,
        ):
            for chunk in generate(versions, models):
                for v in chunk:
                    at = stamp(v.id)
                    version_file.write(
                        f"{v.id}\t{v.model}\t{v.number}\t{v.stage}\t{v.recipe}\t{v.base}\t"
                        f'{v.id:064x}\t{{"lr": 0.0001, "seed": {v.id}}}\t'
                        f"{json.dumps(v.metrics)}\t{json.dumps(v.tags)}\t{at}\t{at}\n"
                    )
                    metric_file.writelines(f"{v.id}\t{k}\t{x!r}\n" for k, x in v.metrics.items())
                    tag_file.writelines(f"{v.id}\t{t}\n" for t in v.tags)
                    artifact_file.write(
                        f"{v.id}\t{v.id}\tcheckpoint\ts3\ts3://bench/{model_name(v.model)}/"
                        f"{v.number}/checkpoint/model.safetensors\t{at}\n"
                    )
        loader.copy(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("cmr_models", "cmr_model_versions", "cmr_artifacts"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
        conn.execute(text("VACUUM ANALYZE"))
    registry.close()


def load_mlflow(url: str, versions: int, models: int) -> None:
    """MLflow's own schema (its migrations), then the same names, versions and version tags."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    # Creating the store creates and migrates MLflow's tables.
    SqlAlchemyStore(url).engine.dispose()  # type: ignore[no-untyped-call]
    engine = create_engine(url)
    now_ms = int(T0.timestamp() * 1000)
    mv_cols = [
        "name",
        "version",
        "creation_time",
        "last_updated_time",
        "current_stage",
        "source",
        "status",
        "storage_location",
        "workspace",
    ]
    with tempfile.TemporaryDirectory(prefix="cmr-bench-") as workdir:
        loader = Loader(Path(workdir))
        model_cols = ["name", "creation_time", "last_updated_time", "workspace"]
        with loader.file("registered_models", model_cols) as model_file:
            model_file.writelines(
                f"{model_name(m)}\t{now_ms}\t{now_ms}\tdefault\n" for m in range(1, models + 1)
            )
        tag_cols = ["key", "value", "name", "version", "workspace"]
        with (
            loader.file("model_versions", mv_cols) as version_file,
            loader.file("model_version_tags", tag_cols) as tag_file,
        ):
            for chunk in generate(versions, models):
                for v in chunk:
                    name = model_name(v.model)
                    ms = now_ms + v.id * 1000
                    source = f"s3://bench/{name}/{v.number}/checkpoint"
                    version_file.write(
                        f"{name}\t{v.number}\t{ms}\t{ms}\tNone\t{source}\tREADY\t{source}\tdefault\n"
                    )
                    tag_file.writelines(
                        f"{t.replace('-', '_')}\ttrue\t{name}\t{v.number}\tdefault\n"
                        for t in v.tags
                    )
        loader.copy(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


# --------------------------------------------------------------------------- timing


def timed(run: Callable[[int], object], runs: int, *, warmup: int = 3) -> list[float]:
    """Milliseconds per call of ``run(i)``, after a few warm-up calls."""
    for i in range(warmup):
        run(-1 - i)
    out = []
    for i in range(runs):
        start = time.perf_counter()
        run(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def query_cases(registry: Registry, models: int) -> dict[str, Callable[[int], object]]:
    rng = random.Random(3)
    picks = [rng.randrange(models) + 1 for _ in range(10_000)]

    def threshold(i: int) -> float:
        return 0.85 + (i % 11) / 100

    def metric_query(i: int) -> Query:
        return (
            Query(registry)
            .where_stage("production")
            .where_recipe("sl_basic")
            .where_metric("accuracy", "gte", threshold(i))
        )

    return {
        "stage+recipe+accuracy>=x, limit 10": lambda i: metric_query(i).limit(10).execute(),
        "  same, order by accuracy desc": lambda i: (
            metric_query(i).order_by_metric("accuracy", "desc").limit(10).execute()
        ),
        "model name + stage": lambda i: (
            Query(registry)
            .where_model_name(model_name(picks[i]))
            .where_stage("production")
            .execute()
        ),
        "version tag, limit 10": lambda i: (
            Query(registry).where_tag(VERSION_TAGS[i % 20]).limit(10).execute()
        ),
        "model tag, limit 10": lambda i: (
            Query(registry).where_tag(MODEL_TAGS[i % 10]).limit(10).execute()
        ),
        "model name, limit 10": lambda i: (
            Query(registry).where_model_name(model_name(picks[i])).limit(10).execute()
        ),
        "count(): stage in (staging, production)": lambda i: (
            Query(registry).where_stage(["staging", "production"]).count()
        ),
        "count(): stage+recipe+accuracy>=x": lambda i: metric_query(i).count(),
    }


def walk_pages(query: Query, size: int) -> tuple[list[float], int]:
    """Milliseconds of every page of a full keyset walk, and the versions seen."""
    times = []
    seen = 0
    cursor = None
    while True:
        start = time.perf_counter()
        page = query.page(size, cursor)
        times.append((time.perf_counter() - start) * 1000)
        seen += len(page.items)
        if page.next_cursor is None:
            return times, seen
        cursor = page.next_cursor


def deep_page(registry: Registry, query: Query, size: int, runs: int) -> tuple[float, float]:
    """p50 of the first page and of the last full page, reached by a cursor built directly."""
    keys = query.spec.sort_keys()
    with registry.engine.connect() as conn:
        stmt = store.queries.select_statement(conn, query.spec)
        # The sort values of the row just before the last `size` rows of the whole walk.
        rows = conn.execute(stmt.offset(query.count() - size - 1).limit(1)).all()
    (row,) = rows
    values: list[object] = []
    for key in keys:
        if key.field == "metric":
            values.append(row.metrics.get(key.metric))
        elif key.field == "stage":
            values.append(STAGES.index(row.stage))
        elif key.field == "model_name":
            values.append(row.model_name)
        else:
            values.append(getattr(row, key.field))
    cursor = encode_cursor(keys, values)
    first = timed(lambda i: query.page(size), runs)
    last = timed(lambda i: query.page(size, cursor), runs)
    assert len(query.page(size, cursor).items) == size
    return p50(first), p50(last)


def timed_pair(
    large: Callable[[int], object], small: Callable[[int], object], runs: int
) -> tuple[list[float], list[float]]:
    """Milliseconds per call of each, the two alternating run by run."""
    for i in range(3):
        large(-1 - i)
        small(-1 - i)
    out: tuple[list[float], list[float]] = ([], [])
    for i in range(runs):
        for run, times in ((large, out[0]), (small, out[1])):
            start = time.perf_counter()
            run(i)
            times.append((time.perf_counter() - start) * 1000)
    return out


def measure_pages(registry: Registry, runs: int) -> dict[str, tuple[float, float, float, int]]:
    """Full page(1000) walks (first, median and last page), then deep pages by cursor."""
    out = {}
    for name, query in {
        "page(1000), id order": Query(registry),
        "page(1000), created_at desc": Query(registry).order_by("created_at", "desc"),
    }.items():
        times, seen = walk_pages(query, 1000)
        # The last page of a walk is the one that comes back short; the last full one is
        # what a deep page costs.
        last = times[-2] if len(times) > 1 else times[0]
        out[name] = (times[0], p50(times), last, seen)
    for name, query in {
        "page(1000), accuracy desc (filtered: inner join)": Query(registry)
        .where_metric("accuracy", ">=", 0)
        .order_by_metric("accuracy", "desc"),
        "page(1000), accuracy desc (missing last)": Query(registry).order_by_metric(
            "accuracy", "desc"
        ),
    }.items():
        first, last = deep_page(registry, query, 1000, max(5, runs // 10))
        out[name] = (first, float("nan"), last, -1)
    return out


def explain(registry: Registry, query: Query) -> str:
    with registry.engine.connect() as conn:
        stmt = store.queries.select_statement(conn, query.spec)
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
        return "\n".join(row[0] for row in plan)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=10_000, help="versions in the small registry")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the databases")
    args = parser.parse_args()

    admin = admin_engine(args.url)
    sizes = {
        "large": (args.versions, args.models),
        "small": (args.small, max(1, args.models * args.small // args.versions)),
    }
    names = {label: f"cmr_bench_query_{label}" for label in sizes}
    results: dict[str, dict[str, tuple[float, float]]] = {}
    pages: dict[str, dict[str, tuple[float, float, float, int]]] = {}
    plans: list[tuple[str, str]] = []
    try:
        registries = {}
        for label, (versions, models) in sizes.items():
            url = database_url(args.url, names[label])
            if not (args.keep and exists(admin, names[label])):
                create_database(admin, names[label])
                start = time.perf_counter()
                load_registry(url, versions, models)
                print(
                    f"loaded {versions:,} versions over {models:,} models in "
                    f"{time.perf_counter() - start:.0f} s ({label})",
                    flush=True,
                )
            registries[label] = Registry.from_url(url, pool_size=2)
        # Large and small runs alternate, so that both see the same load on the machine.
        cases = {
            label: query_cases(registries[label], models) for label, (_, models) in sizes.items()
        }
        for name in cases["large"]:
            large, small = timed_pair(cases["large"][name], cases["small"][name], args.runs)
            results.setdefault("large", {})[name] = (p50(large), p95(large))
            results.setdefault("small", {})[name] = (p50(small), p95(small))
        print("measured the queries", flush=True)
        for label, registry in registries.items():
            pages[label] = measure_pages(registry, args.runs)
        print("measured the pages", flush=True)
        q = (
            Query(registries["large"])
            .where_stage("production")
            .where_recipe("sl_basic")
            .where_metric("accuracy", "gte", 0.9)
            .limit(10)
        )
        plans = [
            ("stage+recipe+accuracy>=0.9, limit 10", explain(registries["large"], q)),
            (
                "same, order by accuracy desc",
                explain(registries["large"], q.order_by_metric("accuracy", "desc")),
            ),
            (
                "version tag, limit 10",
                explain(
                    registries["large"], Query(registries["large"]).where_tag("tag-07").limit(10)
                ),
            ),
        ]
        for registry in registries.values():
            registry.close()

        mlflow_rows = []
        if not args.no_mlflow:
            mlflow_rows = compare_mlflow(admin, args, results)
    finally:
        if not args.keep:
            for name in [*names.values(), "cmr_bench_query_mlflow"]:
                drop_database(admin, name)
        admin.dispose()

    report(args, sizes, results, pages, plans, mlflow_rows)


def compare_mlflow(
    admin: Engine, args: argparse.Namespace, results: dict[str, dict[str, tuple[float, float]]]
) -> list[tuple[str, float, float, float]]:
    try:
        import mlflow
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    except ImportError:
        print("mlflow is not importable: no comparison", flush=True)
        return []
    name = "cmr_bench_query_mlflow"
    url = database_url(args.url, name)
    if not (args.keep and exists(admin, name)):
        create_database(admin, name)
        start = time.perf_counter()
        load_mlflow(url, args.versions, args.models)
        print(
            f"loaded MLflow {mlflow.__version__} with {args.versions:,} versions in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    mlflow_store = SqlAlchemyStore(url)  # type: ignore[no-untyped-call]
    rng = random.Random(3)
    picks = [rng.randrange(args.models) + 1 for _ in range(10_000)]
    cases = {
        "model name, limit 10": lambda i: mlflow_store.search_model_versions(  # type: ignore[no-untyped-call]
            f"name='{model_name(picks[i])}'", max_results=10
        ),
        "version tag, limit 10": lambda i: mlflow_store.search_model_versions(  # type: ignore[no-untyped-call]
            f"tags.{VERSION_TAGS[i % 20].replace('-', '_')} = 'true'", max_results=10
        ),
    }
    rows = []
    for label, run in cases.items():
        probe = timed(run, 1, warmup=1)[0]
        runs = args.runs if probe < 1000 else max(5, args.runs // 10)
        times = timed(run, runs, warmup=0)
        ours = results["large"][label][0]
        rows.append((f"{label} ({runs} runs)", p50(times), p95(times), p50(times) / ours))
    mlflow_store.engine.dispose()
    return rows


def report(
    args: argparse.Namespace,
    sizes: dict[str, tuple[int, int]],
    results: dict[str, dict[str, tuple[float, float]]],
    pages: dict[str, dict[str, tuple[float, float, float, int]]],
    plans: list[tuple[str, str]],
    mlflow_rows: list[tuple[str, float, float, float]],
) -> None:
    out = io.StringIO()
    (lv, lm), (sv, sm) = sizes["large"], sizes["small"]
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", file=out)
    print(
        f"\nQuery DSL on PostgreSQL, p50/p95 ms over {args.runs} runs through Query.execute()/"
        f"count(): large = {lv:,} versions / {lm:,} models, small = {sv:,} / {sm:,}\n",
        file=out,
    )
    print(
        f"{'query':44} {'large p50':>10} {'p95':>8} {'small p50':>10} {'p95':>8} {'ratio':>6}",
        file=out,
    )
    for name, (lp50, lp95) in results["large"].items():
        sp50, sp95 = results["small"][name]
        print(
            f"{name:44} {lp50:10.2f} {lp95:8.2f} {sp50:10.2f} {sp95:8.2f} {lp50 / sp50:6.2f}",
            file=out,
        )
    print(f"\n{'keyset pages (ms)':54} {'first':>8} {'median':>8} {'last':>8}  registry", file=out)
    for label in ("large", "small"):
        for name, (first, median, last, seen) in pages[label].items():
            walked = f", walked {seen:,}" if seen >= 0 else ", last page by cursor"
            print(f"{name:54} {first:8.2f} {median:8.2f} {last:8.2f}  {label}{walked}", file=out)
    if mlflow_rows:
        print(
            f"\nMLflow search_model_versions on {lv:,} versions (same server, its own schema)",
            file=out,
        )
        print(f"{'filter':44} {'p50':>10} {'p95':>8} {'MLflow/ours p50':>16}", file=out)
        for name, m50, m95, ratio in mlflow_rows:
            print(f"{name:44} {m50:10.2f} {m95:8.2f} {ratio:16.1f}", file=out)
    for title, plan in plans:
        print(f"\nEXPLAIN ANALYZE ({title}, large):\n{plan}", file=out)
    sys.stdout.write(out.getvalue())


if __name__ == "__main__":
    main()
