"""Server-side time of the web UI's heaviest pages, against the REST calls that read the same data.

One ``cmr serve --no-auth`` (one worker, uvicorn, loopback) over a registry holding a model
with ``--versions`` versions (three metrics each) and a lineage of ``--nodes`` versions
(a tree with merges). The time is the server's own, from its access log (the request id
ties each line to its request), so the loopback hop is left out. Each page is requested
``--runs`` times after a warm-up; the table shows p50 and p95 in milliseconds, the
target of issue 18, and the ratio to the REST floor measured in the same run:

- the model page as it opens (the newest 25 versions), then sorted by a metric — floor:
  ``POST /api/v1/query/page`` with the same query (the JSON of the same 25 versions);
- the same page filtered by stage and a metric threshold;
- the lineage page of a 200-node graph — floor: ``GET /api/v1/versions/{id}/lineage``;
- the version page of the focus of that graph (lineage picture included).

The machine is shared: read the ratios, and the load printed with them.

    .venv/bin/python bench/ui.py [--runs 50] [--versions 10000] [--nodes 200] [--no-analyze]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.server import _drop_database, _throwaway_database
from tests.servers.registry_server import RegistryServer, start_registry_server

import crucible_model_registry as cmr
from crucible_model_registry.registry import Registry

MODEL = "big"
TREE = "tree"


def seed(registry: Registry, versions: int, nodes: int) -> int:
    """The big model and the lineage tree; the answer is the tree's middle version's id."""
    for n in range(versions):
        registry.register(
            model_name=MODEL,
            recipe="sft",
            base_model="org/base",
            training_config={"seed": n, "lr": 1e-4 * (1 + n % 7)},
            metrics={"accuracy": (n * 37 % 1000) / 1000, "loss": (n % 91) / 91, "bleu": n % 40},
            tags=["nightly"] if n % 3 == 0 else [],
        )
        if n % 500 == 0:
            registry.promote(f"{MODEL}@{n + 1}", "staging")
    ids: list[int] = []
    for n in range(nodes):
        parents = [] if n == 0 else [ids[(n - 1) // 3]]
        if n > 20 and n % 10 == 0:
            parents.append(ids[n - 15])  # a merge
        version = registry.register(
            model_name=TREE,
            recipe="sft",
            base_model="org/base",
            training_config={"node": n},
            parents=parents,
            lineage_type="merged_from" if len(parents) > 1 else "fine_tuned_from",
        )
        ids.append(version.id)
    return ids[0]


def analyze(url: str) -> None:
    """Give the planner statistics of the bulk-loaded tables (``ANALYZE``).

    Without them both planners believe a model has a handful of versions and sort all
    10,000 instead of walking an index: the REST floor and the page alike take 30-80 ms.
    PostgreSQL's autovacuum gathers them in a live registry; SQLite never does on its own
    (``--no-analyze`` shows that state).
    """
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def server_ms(server: RegistryServer, request_id: str) -> float:
    pattern = re.compile(rf" ([0-9.]+)ms request_id={re.escape(request_id)}\b")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = pattern.search(server.log.read_text())
        if found:
            return float(found.group(1))
        time.sleep(0.01)
    raise RuntimeError(f"no access log line for {request_id}")


def measure(
    server: RegistryServer,
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    runs: int,
    body: object = None,
) -> list[float]:
    ids = []
    data = None if body is None else json.dumps(body)
    headers = {"content-type": "application/json"} if body is not None else {}
    for run in range(runs + 5):
        request_id = f"bench-{os.getpid()}-{time.monotonic_ns()}-{run}"
        conn.request(method, path, body=data, headers={**headers, "x-request-id": request_id})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status}")
        if run >= 5:  # warm-up first
            ids.append(request_id)
    return [server_ms(server, i) for i in ids]


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--postgres", help="a PostgreSQL server URL to make a database on")
    parser.add_argument("--no-analyze", action="store_true", help="time without ANALYZE")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cmr-bench-ui-"))
    url = f"sqlite:///{workdir / 'registry.db'}"
    if args.postgres:
        url = _throwaway_database(args.postgres)
    local = Registry.from_url(url)
    local.migrate()
    started = time.perf_counter()
    focus = seed(local, args.versions, args.nodes)
    seeded_in = time.perf_counter() - started
    graph = local.get_lineage(focus)
    local.close()
    if not args.no_analyze:
        analyze(url)
    server = start_registry_server(url, workdir / "server", extra_args=("--no-auth",))
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    query = cmr.Query().where_model_name(MODEL).order_by_metric("accuracy", "desc")
    filtered = query.where_stage("staging").where_metric("bleu", ">=", 10)
    sort = "sort=metric%3Aaccuracy&dir=desc"
    newest = cmr.Query().where_model_name(MODEL).order_by("created_at", "desc")
    cases = [
        (
            f"model page, {args.versions} versions, newest first",
            50.0,
            ("GET", f"/models/{MODEL}", None),
            ("POST", "/api/v1/query/page", {"query": newest.spec.to_json(), "size": 25}),
        ),
        (
            f"model page, {args.versions} versions, by accuracy",
            50.0,
            ("GET", f"/models/{MODEL}?{sort}", None),
            ("POST", "/api/v1/query/page", {"query": query.spec.to_json(), "size": 25}),
        ),
        (
            "model page, stage + bleu>=10 filter",
            50.0,
            ("GET", f"/models/{MODEL}?stage=staging&metric=bleu%3E%3D10&{sort}", None),
            ("POST", "/api/v1/query/page", {"query": filtered.spec.to_json(), "size": 25}),
        ),
        (
            f"lineage page, {len(graph.versions)} nodes",
            100.0,
            ("GET", f"/versions/{focus}/lineage", None),
            ("GET", f"/api/v1/versions/{focus}/lineage", None),
        ),
        (
            f"version page, lineage of {len(graph.versions)}",
            100.0,
            ("GET", f"/versions/{focus}", None),
            ("GET", f"/api/v1/versions/{focus}/lineage", None),
        ),
    ]
    rows = []
    try:
        for name, target, (method, path, body), (f_method, f_path, f_body) in cases:
            page = measure(server, conn, method, path, args.runs, body)
            floor = measure(server, conn, f_method, f_path, args.runs, f_body)
            rows.append((name, target, p(page, 0.5), p(page, 0.95), p(floor, 0.5)))
    finally:
        conn.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.postgres:
            _drop_database(args.postgres, url)

    load = os.getloadavg()
    print(
        f"database: {'PostgreSQL' if args.postgres else 'SQLite'}"
        f"{' (not analyzed)' if args.no_analyze else ' (analyzed)'}, runs={args.runs}, "
        f"seeded in {seeded_in:.0f}s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"{'page (server-side ms)':<42} {'p50':>7} {'p95':>7} {'target':>7} {'met':>4} "
        f"{'REST floor p50':>14} {'page/floor':>10}"
    )
    for name, target, p50, p95, floor in rows:
        met = "yes" if p50 <= target else "NO"
        print(
            f"{name:<42} {p50:>7.1f} {p95:>7.1f} {target:>7.0f} {met:>4} "
            f"{floor:>14.1f} {p50 / floor:>9.1f}x"
        )


if __name__ == "__main__":
    main()
