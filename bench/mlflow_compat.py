"""MLflow compatibility (issue 17): the importer's rate; MlflowClient against us and MLflow.

Run: ``.venv/bin/python bench/mlflow_compat.py [--versions 10000] [--models 10] [--runs 200]
[--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--skip-client]``
(needs the ``bench`` extra: ``mlflow==3.17.2`` and ``psycopg2-binary`` for MLflow's server).

1. An MLflow registry of ``--versions`` versions (``--models`` models; every version with
   two tags, every tenth in Production, one alias per model) is made with MLflow's own
   schema (MLflow's store creates and migrates it) and filled with SQL, on SQLite and on a
   throwaway PostgreSQL database. ``import_mlflow`` brings each into a fresh registry of
   the same kind; the rate (versions/s, target >= 1,000 without artifacts) and the time of
   a second, idempotent run are printed.
2. Unless ``--skip-client``: ``mlflow server`` (3.17.2, one worker) over the PostgreSQL
   MLflow database and ``cmr serve`` (one worker) over the registry it was imported into.
   Timed: each server's start until it answers (MLflow's first start, which migrates an
   empty database, separately), then the same unmodified ``MlflowClient`` calls against
   each, ``--runs`` times after a warm-up, p50/p95 in ms: ``get_model_version``,
   ``get_model_version_by_alias``, ``search_model_versions("tags.shard = '7'")`` (100 of
   the versions match), ``create_model_version``. Targets: ours >= 3x faster, get <= 2 ms,
   search <= 6 ms, start <= 1.5 s. If our server has no MLflow routes yet (they come with
   the ``mlflow-wire`` work), its column says so and only MLflow's numbers are printed.

The machine is shared: the load average is printed beside each part; compare the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.move.mlflow_registry import fill_mlflow

from crucible_model_registry import Registry
from crucible_model_registry.storage.local import LocalStorage

PEER = "mlflow server 3.17.2"


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------- MLflow data


def create_mlflow_schema(url: str) -> float:
    """MLflow's own tables (its store creates and migrates them); the seconds it took."""
    start = time.perf_counter()
    with quiet():
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(url)
        store.engine.dispose()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- part 1


def import_rate(source: str, target: str, workdir: Path) -> tuple[float, float, int]:
    """(seconds of the import, seconds of a second run, versions imported)."""
    registry = Registry.from_url(
        target, storage=LocalStorage(workdir / "artifacts"), auto_migrate=True
    )
    registry.migrate()
    try:
        start = time.perf_counter()
        report = registry.import_mlflow(source)
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = registry.import_mlflow(source)
        second = time.perf_counter() - start
        assert not again.changed, "the second run imported something"
        assert not report.refused, report.refused[:3]
        return first, second, report.imported["versions"]
    finally:
        registry.close()


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.perf_counter() - start
        except (urllib.error.URLError, OSError):
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


class Server:
    def __init__(self, args: list[str], health: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [a.replace("{port}", str(self.port)) for a in args]
        start = time.perf_counter()
        with log.open("wb") as sink:
            # Its own process group: MLflow's server runs its workers as children.
            self.process = subprocess.Popen(
                args, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self.url + health, self.process)
        self.start_seconds = time.perf_counter() - start

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_mlflow(db_url: str, workdir: Path) -> Server:
    binary = str(Path(sys.executable).with_name("mlflow"))
    args = [binary, "server", "--backend-store-uri", db_url, "--host", "127.0.0.1"]
    args += ["--port", "{port}", "--workers", "1"]
    args += ["--artifacts-destination", str(workdir / "mlflow-artifacts")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return Server(args, "/health", env, workdir / "mlflow-server.log")


def start_ours(db_url: str, workdir: Path) -> Server:
    binary = str(Path(sys.executable).with_name("cmr"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update(
        CMR_HOME=str(workdir / "home"),
        CMR_DATABASE_URL=db_url,
        CMR_STORAGE_BACKEND="local",
        CMR_STORAGE_OPTIONS=json.dumps({"base_path": str(workdir / "ours-artifacts")}),
    )
    args = [binary, "serve", "--port", "{port}", "--workers", "1", "--no-auth"]
    return Server(args, "/healthz", env, workdir / "cmr-server.log")


def speaks_mlflow(url: str) -> bool:
    """Does the server answer MLflow's registry API (an MLflow-shaped error counts)?"""
    probe = f"{url}/api/2.0/mlflow/registered-models/get?name=bench-0"
    try:
        with urllib.request.urlopen(probe, timeout=5) as response:
            return "registered_model" in json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return "error_code" in json.loads(exc.read())
        except ValueError:
            return False
    except (OSError, ValueError):
        return False


def timings(call: Callable[[], object], runs: int) -> list[float]:
    for _ in range(min(10, runs)):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples)


def pct(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(q * len(samples)))]


def client_calls(url: str, runs: int, per_model: int, label: str) -> dict[str, list[float]]:
    """The same unmodified MlflowClient calls against ``url``."""
    with quiet():
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=url, registry_uri=url)
        middle = str(per_model // 2)
        results = {
            "get_model_version": timings(lambda: client.get_model_version("bench-0", middle), runs),
            "get_model_version_by_alias": timings(
                lambda: client.get_model_version_by_alias("bench-0", "champion"), runs
            ),
            "search_model_versions(tag)": timings(
                lambda: client.search_model_versions("tags.shard = '7'", max_results=100),
                max(10, runs // 4),
            ),
        }
        found = client.search_model_versions("tags.shard = '7'", max_results=100)
        assert len(found) == 100, f"{label}: the tag search found {len(found)}, not 100"
        name = f"bench-create-{label}"
        client.create_registered_model(name)
        results["create_model_version"] = timings(
            lambda: client.create_model_version(name, "s3://bucket/new/model"),
            max(10, runs // 4),
        )
    return results


# --------------------------------------------------------------------------- main


def throwaway_database(server_url: str, purpose: str) -> str:
    name = f"cmr_bench_mlflow_{purpose}_{os.getpid()}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def mlflow_url(url: str) -> str:
    """MLflow's form of a PostgreSQL URL: its server drives PostgreSQL with psycopg2."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--skip-client", action="store_true")
    args = parser.parse_args()
    per_model = args.versions // args.models
    workdir = Path(tempfile.mkdtemp(prefix="cmr-bench-mlflow-"))
    databases: list[str] = []
    servers: list[Server] = []
    try:
        # ---- part 1: the importer
        print(f"MLflow registry: {args.versions} versions in {args.models} models  [{load()}]")
        sqlite_src = f"sqlite:///{workdir / 'mlflow.db'}"
        sqlite_migrate = create_mlflow_schema(sqlite_src)
        fill_mlflow(sqlite_src, args.versions, args.models)
        pg_src = throwaway_database(args.postgres, "src")
        databases.append(pg_src)
        pg_migrate = create_mlflow_schema(mlflow_url(pg_src))
        fill_mlflow(pg_src, args.versions, args.models)
        print(f"MLflow's schema by its own migrations: SQLite {sqlite_migrate:.1f} s, "
              f"PostgreSQL {pg_migrate:.1f} s")  # fmt: skip
        pg_ours = throwaway_database(args.postgres, "ours")
        databases.append(pg_ours)
        rows = [
            ("SQLite -> SQLite", sqlite_src, f"sqlite:///{workdir / 'ours.db'}"),
            ("PostgreSQL -> PostgreSQL", mlflow_url(pg_src), pg_ours),
        ]
        print(f"\n{'import_mlflow (no artifacts)':<28} {'versions':>8} {'seconds':>8} "
              f"{'versions/s':>10} {'target':>7} {'2nd run s':>9}  load")  # fmt: skip
        for label, source, target in rows:
            first, second, n = import_rate(source, target, workdir / label.replace(" ", ""))
            print(f"{label:<28} {n:>8} {first:>8.2f} {n / first:>10.0f} {'1000':>7} "
                  f"{second:>9.2f}  {load()}")  # fmt: skip
        if args.skip_client:
            return

        # ---- part 2: MlflowClient against MLflow's server and ours, both over PostgreSQL
        empty = throwaway_database(args.postgres, "empty")
        databases.append(empty)
        first_start = start_mlflow(mlflow_url(empty), workdir)
        first_start.stop()
        peer = start_mlflow(mlflow_url(pg_src), workdir)
        servers.append(peer)
        ours = start_ours(pg_ours, workdir)
        servers.append(ours)
        ours_speaks = speaks_mlflow(ours.url)
        print(f"\nMlflowClient calls, one worker each, over PostgreSQL, {args.versions} "
              f"versions  [{load()}]")  # fmt: skip
        print(f"server start: {PEER} {peer.start_seconds:.2f} s (first start, migrating an "
              f"empty database: {first_start.start_seconds:.2f} s); cmr serve "
              f"{ours.start_seconds:.2f} s (target <= 1.5 s)")  # fmt: skip
        theirs = client_calls(peer.url, args.runs, per_model, "mlflow")
        mine = client_calls(ours.url, args.runs, per_model, "cmr") if ours_speaks else None
        targets = {"get_model_version": 2.0, "get_model_version_by_alias": 2.0,
                   "search_model_versions(tag)": 6.0}  # fmt: skip
        print(f"{'call (ms)':<28} {'mlflow p50':>10} {'p95':>7} {'cmr p50':>8} {'p95':>7} "
              f"{'speed-up':>8} {'target':>7}")  # fmt: skip
        for call, samples in theirs.items():
            target = f"<={targets[call]:.0f}" if call in targets else ""
            if mine is None:
                cells = f"{'(no MLflow routes on this server yet)':>34}"
            else:
                m = mine[call]
                speedup = pct(samples, 0.5) / pct(m, 0.5)
                cells = f"{pct(m, 0.5):>8.2f} {pct(m, 0.95):>7.2f} {speedup:>7.1f}x {target:>7}"
            print(f"{call:<28} {pct(samples, 0.5):>10.2f} {pct(samples, 0.95):>7.2f} {cells}")
        print(f"[{load()}]")
    finally:
        for server in servers:
            server.stop()
        for url in databases:
            drop_database(args.postgres, url)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
