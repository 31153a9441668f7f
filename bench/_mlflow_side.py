"""The MLflow half of bench/server.py, run by the Python that has ``mlflow`` installed.

    python bench/_mlflow_side.py TRACKING_URI --runs N --versions N [--clients 16 --seconds 5]

Seeds a registered model ``m`` with ``--versions`` versions through ``MlflowClient`` (a
third tagged ``nightly``, the middle one aliased ``production``), then times the three
calls bench/server.py compares with and prints one JSON object: per operation the list of
latencies in milliseconds, and ``throughput`` (alias reads per second of ``--clients``
processes). The same shapes as the registry's side; a separate process because full MLflow
and this project's dependencies do not share one environment.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable
from typing import Any


def timings(call: Callable[[], object], runs: int) -> list[float]:
    for _ in range(min(20, runs)):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _client(uri: str, ready: Any, go: Any, counts: Any, seconds: float) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.get_model_version_by_alias("m", "production")  # imported and connected
    ready.put(1)
    go.wait()
    stop_at = time.perf_counter() + seconds
    done = 0
    while time.perf_counter() < stop_at:
        client.get_model_version_by_alias("m", "production")
        done += 1
    counts.put(done)


def throughput(uri: str, clients: int, seconds: float) -> float:
    """Alias reads per second of ``clients`` processes, each one client in a loop."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, counts, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=_client, args=(uri, ready, go, counts, seconds))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)  # every client has imported mlflow and connected
    go.set()
    total = sum(counts.get(timeout=seconds + 120) for _ in processes)
    for process in processes:
        process.join()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=args.uri, registry_uri=args.uri)
    if client.search_registered_models("name = 'm'"):
        client.delete_registered_model("m")  # a previous run's, on a reused database
    client.create_registered_model("m")
    for n in range(args.versions):
        tags = {"seed": str(n), "accuracy": str((n % 100) / 100)}
        if n % 3 == 0:
            tags["nightly"] = "true"
        client.create_model_version("m", source=f"s3://bench/m/{n}", tags=tags)
    client.set_registered_model_alias("m", "production", str(args.versions // 2 + 1))
    counter = itertools.count(args.versions)
    ops: dict[str, Callable[[], object]] = {
        "get": lambda: client.get_model_version_by_alias("m", "production"),
        "register": lambda: client.create_model_version(
            "m", source=f"s3://bench/m/{next(counter)}", tags={"seed": "x"}
        ),
        "query": lambda: client.search_model_versions(
            "name = 'm' and tags.nightly = 'true'", max_results=10
        ),
    }
    result: dict[str, object] = {name: timings(call, args.runs) for name, call in ops.items()}

    result["throughput"] = throughput(args.uri, args.clients, args.seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
