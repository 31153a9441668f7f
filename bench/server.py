"""The cost of the HTTP hop: RemoteRegistry through ``cmr serve`` against the same calls in-process.

One ``cmr serve`` (one worker, uvicorn, loopback) and an in-process ``Registry`` share one
database: SQLite in a temporary directory, or with ``--postgres SERVER_URL`` a throwaway
database created on that PostgreSQL server and dropped afterwards. Each
operation runs ``--runs`` times after a warm-up; the table shows p50 and p95 in
milliseconds and the remote/in-process ratio of the p50s, measured in the same run:

- ``get_version("m@production")``
- ``register`` (a new training run each time, auto-numbered)
- ``query`` with a tag and a metric condition, ``limit(10)``, over ``--versions`` versions

Then the cost of authentication (issue 16), measured in the same run:

- end to end: ``get_version`` p50 through the server with its token check and through a
  second ``cmr serve --no-auth`` on the same database, calls interleaved one by one;
- in process: the check itself (``Authenticator.cached``: hash the token, find its cached
  lookup, check the expiry) and a cache miss (the indexed read of the token table).

MLflow's basic auth, the peer, as issue 16 measured it: 340-510 ms per request with its
default settings, 11-23 ms with its cache on, against 6 ms without auth (quoted, not run
here). The target: at most 0.1 ms added per request.

The machine is shared: read the ratios, not the absolute numbers.

    .venv/bin/python bench/server.py [--runs 300] [--versions 500]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.registry_server import start_registry_server

import crucible_model_registry as cmr
from crucible_model_registry.registry import Registry, RemoteRegistry


def timings(call: Callable[[], object], runs: int) -> list[float]:
    for _ in range(min(20, runs)):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _throwaway_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"cmr_bench_{os.getpid()}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--postgres", help="a PostgreSQL server URL to make a database on")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cmr-bench-server-"))
    url = f"sqlite:///{workdir / 'registry.db'}"
    if args.postgres:
        url = _throwaway_database(args.postgres)
    local = Registry.from_url(url)
    local.migrate()
    for n in range(args.versions):
        local.register(
            model_name="m",
            recipe="sft",
            base_model="base",
            training_config={"seed": n},
            metrics={"accuracy": (n % 100) / 100},
            tags=["nightly"] if n % 3 == 0 else [],
        )
    local.promote(f"m@{args.versions // 2}", "production")
    server = start_registry_server(url, workdir / "server")
    remote = RemoteRegistry(server.url, token=server.token)
    counter = itertools.count(args.versions)
    query = cmr.Query().where_tag("nightly").where_metric("accuracy", ">=", 0.5).limit(10)

    def ops(registry: Registry) -> dict[str, Callable[[], object]]:
        return {
            'get_version("m@production")': lambda: registry.get_version("m@production"),
            "register": lambda: registry.register(
                model_name="m",
                recipe="sft",
                base_model="base",
                training_config={"seed": next(counter)},
            ),
            "query(tag+metric, limit=10)": lambda: registry.query(query),
        }

    open_server = start_registry_server(
        url, workdir / "open", extra_args=("--no-auth",), token=server.token
    )
    unauthenticated = RemoteRegistry(open_server.url)
    try:
        rows = []
        for (name, in_process), remote_call in zip(
            ops(local).items(), ops(remote).values(), strict=True
        ):
            a = timings(in_process, args.runs)
            b = timings(remote_call, args.runs)
            rows.append((name, p(a, 0.5), p(a, 0.95), p(b, 0.5), p(b, 0.95)))
        auth_rows = _auth_cost(local, remote, unauthenticated, server.token, args.runs)
    finally:
        remote.close()
        unauthenticated.close()
        server.stop()
        open_server.stop()
        local.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.postgres:
            _drop_database(args.postgres, url)

    print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}, runs={args.runs}")
    header = f"{'operation':<30} {'in-proc p50':>11} {'p95':>7} {'remote p50':>10} {'p95':>7}"
    print(header + f" {'ratio p50':>9} {'overhead p50':>12}")
    for name, a50, a95, b50, b95 in rows:
        print(
            f"{name:<30} {a50:>11.2f} {a95:>7.2f} {b50:>10.2f} {b95:>7.2f} "
            f"{b50 / a50:>8.1f}x {b50 - a50:>10.2f}ms"
        )
    print()
    print(f"authentication per request (load: {os.getloadavg()[0]:.2f}, 2 cores shared)")
    print(f"{'measurement':<58} {'p50 ms':>9}")
    for name, value in auth_rows:
        print(f"{name:<58} {value:>9.4f}")
    print(f"{'peer: MLflow basic auth, default settings (issue 16)':<58} {'340-510':>9}")
    print(f"{'peer: MLflow basic auth, cache on (issue 16)':<58} {'11-23':>9}")
    print(f"{'peer: MLflow without auth (issue 16)':<58} {'6':>9}")
    print(f"{'target: added by our check':<58} {'<= 0.1':>9}")


def _auth_cost(
    local: Registry,
    remote: RemoteRegistry,
    unauthenticated: RemoteRegistry,
    token: str,
    runs: int,
) -> list[tuple[str, float]]:
    """End-to-end p50s with and without the token check, and the check itself in process."""
    from crucible_model_registry._context import as_principal, handling_request
    from crucible_model_registry.server.auth import Authenticator, credentials_from_headers

    with_auth, without = [], []
    for _ in range(20):
        remote.get_version("m@production")
        unauthenticated.get_version("m@production")
    for _ in range(runs):  # interleaved, so both see the same load
        start = time.perf_counter()
        remote.get_version("m@production")
        with_auth.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        unauthenticated.get_version("m@production")
        without.append((time.perf_counter() - start) * 1000)
    hit = Authenticator(local, cache_seconds=3600)
    hit.authenticate(token)
    loops = 20_000
    headers = {"authorization": f"Bearer {token}", "accept": "*/*"}
    start = time.perf_counter()
    for _ in range(loops):  # what the Edge middleware does per request on a cache hit
        principal = hit.cached(credentials_from_headers(headers) or "")
        assert principal is not None
        hit.needs_touch(principal)
        with as_principal(principal), handling_request("r"):
            pass
    per_hit = (time.perf_counter() - start) * 1000 / loops
    miss = Authenticator(local, cache_seconds=0)
    misses = timings(lambda: miss.authenticate(token), runs)
    return [
        ("get_version through the server, token checked", p(with_auth, 0.5)),
        ("get_version through the server, --no-auth", p(without, 0.5)),
        (
            "difference of the two p50s (noise is larger than the check)",
            p(with_auth, 0.5) - p(without, 0.5),
        ),
        ("the check itself, cached (header, hash, lookup, expiry, context)", per_hit),
        ("a cache miss: the token table's indexed read", p(misses, 0.5)),
    ]


if __name__ == "__main__":
    main()
