"""Registration latency of two source trees, alternated in short bursts: an A/B of a change.

Run: ``.venv/bin/python bench/ab_register.py --a /tmp/before/src --b src [--rounds 12]``
(``git archive <commit> src | tar -x -C /tmp/before`` gives a tree of another commit).

On a shared machine the load, and PostgreSQL's fsync time with it, changes by 2-20x within
minutes, so two runs of ``bench/register.py`` minutes apart do not compare. Here each round
runs a burst of registrations of tree A, then one of tree B (then B before A, alternating),
each in a fresh process importing its tree, on a database of its own migrated by its own
tree; the registrations are ``bench/register.py``'s (one artifact, two metrics, one
parent, auto-numbered). The table gives each tree's p50 over all rounds, the median of the
per-round p50 differences, and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent

_WORKER = """
import json, sys, time
sys.path.insert(0, {bench!r})
from register import CmrClient
client = CmrClient({url!r})
model = "ab"
parent = client.setup_model(model) if {first} else None
parent = parent or client.registry.get_version(model + "@1").id
for i in range(10):
    client.register(model, "warm{tag}", i, parent)
latencies = []
for i in range({n}):
    t = time.perf_counter()
    client.register(model, "{tag}", i, parent)
    latencies.append(time.perf_counter() - t)
client.close()
print(json.dumps(latencies))
"""


def _run(src: str, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"worker on {src} failed:\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def _databases(kind: str, admin_url: str, workdir: Path) -> Iterator[tuple[str, str]]:
    sys.path.insert(0, str(BENCH))
    from register import postgres_database, sqlite_database

    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            a = stack.enter_context(sqlite_database(workdir, "a"))
            b = stack.enter_context(sqlite_database(workdir, "b"))
        else:
            a = stack.enter_context(postgres_database(admin_url, "ab_a"))
            b = stack.enter_context(postgres_database(admin_url, "ab_b"))
        yield a, b


def _migrate(src: str, url: str) -> None:
    _run(
        src,
        "from crucible_model_registry import Registry\n"
        f"r = Registry.from_url({url!r}, auto_migrate=True); r.migrate(); r.close()",
    )


def _async_commit(admin_url: str, urls: list[str]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in urls:
            name = make_url(url).database
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="source tree A (the baseline)")
    parser.add_argument("--b", required=True, help="source tree B (the change)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--n", type=int, default=100, help="registrations per burst")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--pg-async-commit",
        action="store_true",
        help="synchronous_commit=off on the PostgreSQL databases: the CPU and round-trip "
        "cost without the fsync wait, which dominates and varies most on a shared disk",
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    srcs = {"A": str(Path(args.a).resolve()), "B": str(Path(args.b).resolve())}
    print(f"{'database':<11} {'tree':<4} {'p50 ms':>7} {'p95 ms':>7}  load before -> after")
    for kind in kinds:
        with (
            tempfile.TemporaryDirectory(prefix="cmr-ab-") as tmp,
            _databases(kind, args.pg_url, Path(tmp)) as (url_a, url_b),
        ):
            urls = {"A": url_a, "B": url_b}
            if kind == "postgresql" and args.pg_async_commit:
                _async_commit(args.pg_url, [url_a, url_b])
            for side in ("A", "B"):
                _migrate(srcs[side], urls[side])
            load_before = os.getloadavg()[0]
            lat: dict[str, list[float]] = {"A": [], "B": []}
            diffs: list[float] = []
            for r in range(args.rounds):
                p50 = {}
                for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    code = _WORKER.format(
                        bench=str(BENCH), url=urls[side], first=r == 0, tag=f"r{r}", n=args.n
                    )
                    got = json.loads(_run(srcs[side], code))
                    lat[side] += got
                    p50[side] = statistics.median(got)
                diffs.append(p50["B"] - p50["A"])
            load_after = os.getloadavg()[0]
            for side in ("A", "B"):
                q = statistics.quantiles(lat[side], n=100)
                print(
                    f"{kind:<11} {side:<4} {_ms(q[49]):>7} {_ms(q[94]):>7}  "
                    f"{load_before:.1f} -> {load_after:.1f}"
                )
            print(
                f"{kind:<11} B-A  median of per-round p50 differences: "
                f"{_ms(statistics.median(diffs))} ms over {args.rounds} rounds of {args.n}"
            )
    print(f"CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    main()
