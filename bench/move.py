"""Export, import and copy speed of whole registries, with peak memory.

Run: ``.venv/bin/python bench/move.py [--n 20000] [--per-model 1000] [--pg-url URL]``.

1. A synthetic export of N versions is written directly (no registry involved): models of
   ``--per-model`` versions, each version with two metrics, two tags, one artifact, a
   lineage edge to the version before it (a fine-tuning chain), its registration in the
   stage history, and every tenth version promoted (a second history row); each model has
   an alias, its alias history and a promotion policy.
2. import into PostgreSQL (a database created for the run), then export from it, then
   import into SQLite and copy SQLite -> a second PostgreSQL database (``copy_to``, the
   code behind ``cmr db copy``). Each step runs in a fresh interpreter, which reports its
   wall time and its peak RSS (``ru_maxrss``).

The issue's targets are at 1,000,000 versions: export >= 20,000 versions/s, import >=
10,000 versions/s, <= 200 MiB. The load average is printed: on a shared machine it matters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crucible_model_registry.domain.exchange import CORE_KINDS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _t(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def write_export(root: Path, n: int, per_model: int) -> None:
    """A valid export directory of ``n`` versions, written line by line."""
    kinds = list(CORE_KINDS)
    root.mkdir(parents=True)
    files = {k: (root / f"{k}.jsonl").open("w") for k in kinds}
    counts = dict.fromkeys(kinds, 0)

    def put(kind: str, line: dict[str, object]) -> None:
        files[kind].write(json.dumps(line, separators=(",", ":")) + "\n")
        counts[kind] += 1

    done = 0
    m = 0
    while done < n:
        model = f"bench-{m:05d}"
        size = min(per_model, n - done)
        put(
            "models",
            {
                "name": model,
                "description": None,
                "tags": ["bench"],
                "metadata": {},
                "version_seq": size,
                "created_at": _t(done),
                "updated_at": _t(done),
            },
        )
        for i in range(1, size + 1):
            at = done + i
            version = str(i)
            config_hash = hashlib.sha256(f"{model}/{i}".encode()).hexdigest()
            stage = "production" if i % 10 == 0 else "experiment"
            put(
                "versions",
                {
                    "model": model,
                    "version": version,
                    "stage": stage,
                    "recipe": "sft",
                    "base_model": "org/base",
                    "config_hash": config_hash,
                    "training_config": {"lr": 1e-4, "seed": i},
                    "metrics": {"accuracy": (i % 100) / 100, "loss": 1.0 / i},
                    "tags": ["sft", f"batch-{i % 7}"],
                    "description": None,
                    "created_at": _t(at),
                    "updated_at": _t(at + 0.5),
                },
            )
            put(
                "artifacts",
                {
                    "model": model,
                    "version": version,
                    "type": "checkpoint",
                    "storage_backend": "s3",
                    "storage_path": f"s3://bench/{model}/{version}/model.safetensors",
                    "checksum": config_hash,
                    "size_bytes": 1 << 30,
                    "manifest": None,
                    "created_at": _t(at),
                },
            )
            if i > 1:
                put(
                    "lineage_edges",
                    {
                        "model": model,
                        "version": version,
                        "parent_model": model,
                        "parent_version": str(i - 1),
                        "relationship": "fine_tuned_from",
                        "metadata": {},
                        "created_at": _t(at),
                    },
                )
            put(
                "stage_transitions",
                {
                    "model": model,
                    "version": version,
                    "from_stage": None,
                    "to_stage": "experiment",
                    "reason": "registered",
                    "actor": "bench",
                    "at": _t(at),
                },
            )
            if stage == "production":
                put(
                    "stage_transitions",
                    {
                        "model": model,
                        "version": version,
                        "from_stage": "experiment",
                        "to_stage": "production",
                        "reason": "evals",
                        "actor": "bench",
                        "at": _t(at + 0.5),
                    },
                )
        put(
            "aliases",
            {"model": model, "alias": "champion", "version": "1", "updated_at": _t(done + 1)},
        )
        put(
            "alias_changes",
            {
                "model": model,
                "alias": "champion",
                "version": "1",
                "reason": None,
                "actor": "bench",
                "at": _t(done + 1),
            },
        )
        put(
            "promotion_policies",
            {
                "model": model,
                "policy": {"allowed": {}, "gates": {}, "exclusive": ["production"]},
                "updated_at": _t(done),
            },
        )
        done += size
        m += 1
    for fh in files.values():
        fh.close()
    listed = {}
    for kind in kinds:
        path = root / f"{kind}.jsonl"
        listed[path.name] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size_bytes": path.stat().st_size,
        }
    manifest = {
        "format": "crucible-model-registry/export",
        "format_version": 1,
        "counts": counts,
        "files": listed,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))


# --------------------------------------------------------------------------- one step


def step(args: argparse.Namespace) -> None:
    """Run one step in this (fresh) interpreter and print its JSON result."""
    from crucible_model_registry import Registry
    from crucible_model_registry.storage.noop import NoopStorage

    started = time.perf_counter()
    source = Registry.from_url(args.url, storage=NoopStorage())
    if args.step == "import":
        report = source.import_from(args.path)
        assert not report.refused, report.refused[:3]
        versions = report.imported["versions"]
    elif args.step == "export":
        result = source.export_to(args.path)
        versions = result.counts["versions"]
    else:
        target = Registry.from_url(args.to, storage=NoopStorage())
        report = source.copy_to(target)
        assert not report.refused, report.refused[:3]
        versions = report.imported["versions"]
    wall = time.perf_counter() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"versions": versions, "seconds": wall, "rss_mib": rss_mib}))


def _run_step(*argv: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--step", *argv], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _create_database(admin_url: str) -> str:
    from crucible_model_registry import Registry

    name = f"cmr_bench_move_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    registry = Registry.from_url(url)
    registry.migrate()
    registry.close()
    return url


def _drop_database(admin_url: str, url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _say(label: str, result: dict[str, float]) -> None:
    rate = result["versions"] / result["seconds"] if result["seconds"] else 0.0
    print(
        f"{label:<34} {int(result['versions']):>9} versions {result['seconds']:8.1f} s "
        f"{rate:10,.0f} versions/s  peak RSS {result['rss_mib']:6.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="versions (default 20,000)")
    parser.add_argument("--per-model", type=int, default=1000, help="versions per model")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--step", choices=["import", "export", "copy"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--to", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step(args)
        return
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="cmr-bench-move-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        write_export(work / "synthetic", args.n, args.per_model)
        took = time.perf_counter() - started
        print(f"synthetic export of {args.n} versions written in {took:.1f} s")
        pg = _create_database(args.pg_url)
        pg2 = _create_database(args.pg_url)
        sqlite = f"sqlite:///{work / 'registry.db'}"
        from crucible_model_registry import Registry

        Registry.from_url(sqlite).migrate()
        try:
            _say(
                "import -> PostgreSQL",
                _run_step("import", "--url", pg, "--path", str(work / "synthetic")),
            )
            _say(
                "export <- PostgreSQL",
                _run_step("export", "--url", pg, "--path", str(work / "out")),
            )
            _say(
                "import -> SQLite",
                _run_step("import", "--url", sqlite, "--path", str(work / "synthetic")),
            )
            _say("copy SQLite -> PostgreSQL", _run_step("copy", "--url", sqlite, "--to", pg2))
        finally:
            _drop_database(args.pg_url, pg)
            _drop_database(args.pg_url, pg2)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
