"""The team server measured: the HTTP hop, MLflow's tracking server, throughput, memory.

One ``cmr serve`` (uvicorn, loopback) and an in-process ``Registry`` share one database,
SQLite in a temporary directory or, with ``--postgres SERVER_URL``, a throwaway database
on that PostgreSQL server (dropped afterwards), and one local artifact directory. Each
operation runs ``--runs`` times after a warm-up; the tables show p50 and p95 in
milliseconds and ratios measured in the same run:

1. ``get_version("m@production")``, ``register`` (a new training run, auto-numbered), a
   ``query`` with a tag and a metric condition and ``limit(10)`` over ``--versions``
   versions: RemoteRegistry against the same calls in-process (the HTTP hop's overhead;
   target p50 <= 1 ms) and, with ``--mlflow-python``, against MLflow's own tracking server
   (``mlflow server`` over a database of its own on the same PostgreSQL, driven by
   ``MlflowClient``: ``get_model_version_by_alias``, ``create_model_version``,
   ``search_model_versions`` with a tag filter; targets: register >= 5x and tag search
   >= 20x MLflow's rate).
2. A ``--artifact-mib`` artifact download: in-process, through RemoteRegistry (streamed,
   SHA-256 checked by the client, moved into place) and a plain ``httpx`` stream of the same
   URL to a file (target: RemoteRegistry >= 0.8x the plain stream's rate).
3. Throughput of ``--clients`` client processes (one RemoteRegistry each) reading
   ``get_version`` and registering, against 1 and 2 workers; MLflow's alias reads at 1.
4. RSS of each worker after the load (target <= 150 MiB).
5. The cost of authentication (issue 16): ``get_version`` p50 through the server with its
   token check and through a second ``cmr serve --no-auth`` on the same database, calls
   interleaved; the check itself in process (``Authenticator.cached``) and a cache miss.
   MLflow's basic auth, as issue 16 measured it, is quoted (340-510 ms per request with its
   default settings, 11-23 ms with its cache on, 6 ms without auth); target <= 0.1 ms added.

The machine is shared: read the ratios, not the absolute numbers, and the load printed.

    .venv/bin/python bench/server.py [--runs 200] [--versions 500] [--artifact-mib 100]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--mlflow-python /path/to/venv-with-mlflow/bin/python]

MLflow 3.17.2 (``pip install 'crucible-model-registry[bench]'`` or a scratch venv:
``python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow==3.17.2 psycopg2-binary``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.registry_server import RegistryServer, start_registry_server

import crucible_model_registry as cmr
from crucible_model_registry.registry import Registry, RemoteRegistry
from crucible_model_registry.storage.local import LocalStorage

HERE = Path(__file__).resolve().parent


def timings(call: Callable[[], object], runs: int, warmup: int = 20) -> list[float]:
    for _ in range(min(warmup, runs)):
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


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- databases


def _throwaway_database(server_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
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


# --------------------------------------------------------------------------- throughput


def _client(
    url: str, token: str, op: str, seed: int, ready: Any, go: Any, counts: Any, seconds: float
) -> None:
    remote = RemoteRegistry(url, token=token)
    counter = itertools.count()
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: remote.get_version("m@production"),
        "register": lambda: remote.register(
            model_name="load",
            recipe="sft",
            base_model="base",
            training_config={"client": seed, "n": next(counter)},
        ),
    }
    call = calls[op]
    remote.get_version("m@production")  # connected
    ready.put(seed)
    go.wait()
    stop_at = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < stop_at:
        call()
        done += 1
    counts.put(done)
    remote.close()


def throughput(server: RegistryServer, op: str, clients: int, seconds: float) -> float:
    """Calls per second of ``clients`` processes, each one RemoteRegistry in a loop."""
    context = multiprocessing.get_context("spawn")
    ready, counts, go = context.Queue(), context.Queue(), context.Event()
    salt = int(time.time() * 1000)
    processes = [
        context.Process(
            target=_client,
            args=(server.url, server.token, op, salt + n, ready, go, counts, seconds),
        )
        for n in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)  # every client has imported the package and connected
    go.set()
    total = sum(counts.get(timeout=seconds + 120) for _ in processes)
    for process in processes:
        process.join()
    return total / seconds


def worker_rss_mib(server: RegistryServer) -> list[float]:
    """The resident memory of each process serving requests (the workers, not the parent)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    # uvicorn with --workers N: a supervisor and N worker children (and a resource tracker
    # of multiprocessing, which serves nothing); with 1 worker the process itself serves.
    pids = [int(c) for c in children if b"resource_tracker" not in _cmdline(int(c))]
    result = []
    for worker in pids or [pid]:
        for line in Path(f"/proc/{worker}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                result.append(int(line.split()[1]) / 1024)
    return result


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# --------------------------------------------------------------------------- MLflow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_mlflow(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """MLflow's tracking server over a database of its own; the client side's timings."""
    from sqlalchemy.engine import make_url

    name = f"mlflow_bench_{os.getpid()}"
    db_url = _throwaway_database(args.postgres, name)
    mlflow_db = make_url(db_url).set(drivername="postgresql+psycopg2").render_as_string(False)
    bin_dir = Path(args.mlflow_python).parent
    port = _free_port()
    log = (workdir / "mlflow.log").open("wb")
    server = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            mlflow_db,
            "--default-artifact-root",
            f"file://{workdir / 'mlflow-artifacts'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # the first start migrates its schema
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "mlflow.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server did not start:\n{tail}")
            time.sleep(0.5)
        side = subprocess.run(
            [
                args.mlflow_python,
                str(HERE / "_mlflow_side.py"),
                uri,
                "--runs",
                str(args.runs),
                "--versions",
                str(args.versions),
                "--clients",
                str(args.clients),
                "--seconds",
                str(args.seconds),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, object] = json.loads(side.stdout.strip().splitlines()[-1])
        rss = []
        for pid in [server.pid, *_descendants(server.pid)]:
            if b"uvicorn" in _cmdline(pid) or b"mlflow" in _cmdline(pid):
                status = Path(f"/proc/{pid}/status").read_text()
                rss += [int(x.split()[1]) / 1024 for x in status.splitlines() if "VmRSS" in x]
        result["rss"] = rss
        return result
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        _drop_database(args.postgres, db_url)


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for c in children for d in _descendants(c)]


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


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--artifact-mib", type=int, default=100)
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--postgres", help="a PostgreSQL server URL to make databases on")
    parser.add_argument("--mlflow-python", help="a Python with mlflow installed (needs --postgres)")
    args = parser.parse_args()
    if args.mlflow_python and not args.postgres:
        parser.error("--mlflow-python needs --postgres (MLflow gets a database of its own there)")

    print(f"start: {load()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="cmr-bench-server-"))
    url = f"sqlite:///{workdir / 'registry.db'}"
    if args.postgres:
        url = _throwaway_database(args.postgres, f"cmr_bench_{os.getpid()}")
    storage_dir = workdir / "artifacts"
    storage_dir.mkdir()
    local = Registry.from_url(url, storage=LocalStorage(storage_dir))
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
    blob = workdir / "model.bin"
    with blob.open("wb") as sink:
        block = os.urandom(1 << 20)
        for _ in range(args.artifact_mib):
            sink.write(block)
    artifact = local.upload_artifact("m@1", "checkpoint", blob, name="model.bin")
    blob.unlink()

    servers: list[RegistryServer] = []
    rows: list[tuple[str, list[float], list[float]]] = []
    downloads: dict[str, list[float]] = {}
    rates: dict[str, float] = {}
    rss: dict[str, list[float]] = {}
    mlflow: dict[str, object] = {}
    auth_rows: list[tuple[str, float]] = []
    try:
        server = start_registry_server(url, workdir / "server1", storage_dir=storage_dir)
        servers.append(server)
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

        for (name, in_process), remote_call in zip(
            ops(local).items(), ops(remote).values(), strict=True
        ):
            rows.append((name, timings(in_process, args.runs), timings(remote_call, args.runs)))
        print(f"latency done: {load()}", flush=True)

        # Downloads: interleaved, so a busy moment hits all three ways.
        import httpx2

        plain = httpx2.Client(timeout=httpx2.Timeout(30, read=None), headers=server.auth)
        content_url = f"{server.url}/api/v1/artifacts/{artifact.id}/content"
        target = workdir / "download.bin"

        def in_process() -> None:
            local.download_artifact(artifact, target, overwrite=True)

        def through_remote() -> None:
            remote.download_artifact(artifact.id, target, overwrite=True)

        def plain_stream() -> None:
            with plain.stream("GET", content_url) as response, target.open("wb") as sink:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    sink.write(chunk)

        ways = {"in-process": in_process, "RemoteRegistry": through_remote, "httpx": plain_stream}
        for name in ways:
            downloads[name] = []
        for _ in range(args.downloads + 1):
            for name, call in ways.items():
                downloads[name].append(timings(call, 1, warmup=0)[0])
                target.unlink()
        for samples in downloads.values():
            samples.pop(0)  # the first round warms the page cache
        plain.close()
        print(f"downloads done: {load()}", flush=True)

        open_server = start_registry_server(
            url, workdir / "open", extra_args=("--no-auth",), token=server.token
        )
        servers.append(open_server)
        unauthenticated = RemoteRegistry(open_server.url)
        auth_rows = _auth_cost(local, remote, unauthenticated, server.token, args.runs)
        unauthenticated.close()
        open_server.stop()
        print(f"authentication done: {load()}", flush=True)

        rates["get, 1 worker"] = throughput(server, "get", args.clients, args.seconds)
        rates["register, 1 worker"] = throughput(server, "register", args.clients, args.seconds)
        rss["1 worker"] = worker_rss_mib(server)
        remote.close()
        server.stop()
        two = start_registry_server(url, workdir / "server2", workers=2, storage_dir=storage_dir)
        servers.append(two)
        rates["get, 2 workers"] = throughput(two, "get", args.clients, args.seconds)
        rates["register, 2 workers"] = throughput(two, "register", args.clients, args.seconds)
        rss["2 workers"] = worker_rss_mib(two)
        two.stop()
        print(f"throughput done: {load()}", flush=True)
        if args.mlflow_python:
            try:
                mlflow = run_mlflow(args, workdir)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or ""
                print(f"MLflow left out: {exc}\n{detail[-3000:]}", flush=True)
            print(f"mlflow done: {load()}", flush=True)
    finally:
        for running in servers:
            running.stop()
        local.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.postgres:
            _drop_database(args.postgres, url)

    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\ndatabase: {kind}, runs={args.runs}, versions={args.versions}; end: {load()}")
    print("\n1. Latency, ms (ratio: remote p50 / in-process p50; overhead: their difference)")
    header = f"{'operation':<30} {'in-proc p50':>11} {'p95':>7} {'remote p50':>10} {'p95':>7}"
    header += f" {'ratio':>6} {'overhead':>9}"
    if mlflow:
        header += f" {'MLflow p50':>10} {'p95':>7} {'our rate / MLflow':>18}"
    print(header)
    mlflow_keys = ["get", "register", "query"]
    for index, (name, a, b) in enumerate(rows):
        a50, b50 = p(a, 0.5), p(b, 0.5)
        line = (
            f"{name:<30} {a50:>11.2f} {p(a, 0.95):>7.2f} {b50:>10.2f} {p(b, 0.95):>7.2f} "
            f"{b50 / a50:>5.1f}x {b50 - a50:>7.2f}ms"
        )
        if mlflow:
            m = mlflow[mlflow_keys[index]]
            assert isinstance(m, list)
            line += f" {p(m, 0.5):>10.2f} {p(m, 0.95):>7.2f} {p(m, 0.5) / b50:>17.1f}x"
        print(line)
    if mlflow:
        print("   MLflow: get_model_version_by_alias, create_model_version, search_model_versions")
        print("   with a tag filter (MLflow's model versions have no metrics to filter on)")

    mib = args.artifact_mib
    print(f"\n2. Download of a {mib} MiB artifact, ms (rate ratio against the plain httpx stream)")
    floor = p(downloads["httpx"], 0.5)
    for name, samples in downloads.items():
        p50 = p(samples, 0.5)
        print(
            f"{name:<16} p50 {p50:>8.1f}  p95 {p(samples, 0.95):>8.1f}  "
            f"{mib / (p50 / 1000):>7.0f} MiB/s  {floor / p50:>5.2f}x httpx"
        )

    print(f"\n3. Throughput, {args.clients} client processes, {args.seconds:.0f} s, calls/s")
    for name, rate in rates.items():
        print(f"{name:<22} {rate:>8.0f}")
    if mlflow:
        print(f"{'MLflow alias reads, 1':<22} {mlflow['throughput']:>8.0f}")

    print("\n4. RSS per worker after the load, MiB (target <= 150)")
    for name, values in rss.items():
        print(f"{name:<22} " + ", ".join(f"{v:.0f}" for v in values))
    if mlflow:
        values = mlflow["rss"]
        assert isinstance(values, list)
        print(f"{'MLflow server procs':<22} " + ", ".join(f"{v:.0f}" for v in values))

    print(f"\n5. Authentication per request (load: {os.getloadavg()[0]:.2f}, 2 cores shared)")
    print(f"{'measurement':<58} {'p50 ms':>9}")
    for name, value in auth_rows:
        print(f"{name:<58} {value:>9.4f}")
    print(f"{'peer: MLflow basic auth, default settings (issue 16)':<58} {'340-510':>9}")
    print(f"{'peer: MLflow basic auth, cache on (issue 16)':<58} {'11-23':>9}")
    print(f"{'peer: MLflow without auth (issue 16)':<58} {'6':>9}")
    print(f"{'target: added by our check':<58} {'<= 0.1':>9}")


if __name__ == "__main__":
    main()
