# ruff: noqa: E501  (the table of calls reads best one call per line)
"""Compare our MLflow wire API with a real ``mlflow server``, call by call, field by field.

Both servers start on loopback over fresh SQLite databases; the same raw HTTP requests
(what MLflow's client sends) go to each, and the table shows, per call, the HTTP status
and the JSON shape (every key path with the type of its value) of both answers. Values
that differ by nature (timestamps, ids, messages) are not compared, only their presence
and type. Full MLflow does not belong in our dev extra: install it in a scratch venv.

    python -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/bin/pip install mlflow==3.17.2
    python bench/mlflow_wire_shapes.py --mlflow /tmp/mlflow-venv/bin/mlflow [--versions 300]

With ``--versions N`` it then registers N versions on each server through MLflow's own
client and prints p50 latencies of a few calls as that client sees them (1 worker each,
SQLite; ``bench/mlflow_compat.py`` is the full benchmark over PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.registry_server import free_port, start_registry_server

CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "registered-models/create", {"name": "m", "tags": [{"key": "t", "value": "1"}], "description": "d"}),
    ("POST", "registered-models/create", {"name": "m"}),
    ("GET", "registered-models/get", {"name": "m"}),
    ("GET", "registered-models/get", {"name": "missing"}),
    ("POST", "model-versions/create", {"name": "m", "source": "s3://b/x", "run_id": "r1", "tags": [{"key": "k", "value": "v"}], "description": "vd"}),
    ("POST", "model-versions/create", {"name": "m", "source": "s3://b/y"}),
    ("POST", "model-versions/create", {"name": "missing", "source": "s3://b/z"}),
    ("GET", "model-versions/get", {"name": "m", "version": "1"}),
    ("GET", "model-versions/get", {"name": "m", "version": "9"}),
    ("POST", "registered-models/alias", {"name": "m", "alias": "champion", "version": "1"}),
    ("GET", "registered-models/alias", {"name": "m", "alias": "champion"}),
    ("POST", "model-versions/transition-stage", {"name": "m", "version": "1", "stage": "Production", "archive_existing_versions": True}),
    ("POST", "registered-models/get-latest-versions", {"name": "m"}),
    ("GET", "registered-models/get", {"name": "m"}),
    ("GET", "registered-models/search", {"filter": "name LIKE 'm%'", "max_results": "1"}),
    ("GET", "registered-models/search", {"filter": "name = 'a' OR name = 'b'"}),
    ("GET", "model-versions/search", {"filter": "name='m'", "max_results": "1"}),
    ("GET", "model-versions/search", {"filter": "name='m' AND tags.k='v'"}),
    ("POST", "model-versions/set-tag", {"name": "m", "version": "2", "key": "q", "value": "good"}),
    ("DELETE", "model-versions/delete-tag", {"name": "m", "version": "2", "key": "q"}),
    ("POST", "registered-models/set-tag", {"name": "m", "key": "owner", "value": "me"}),
    ("DELETE", "registered-models/delete-tag", {"name": "m", "key": "owner"}),
    ("PATCH", "model-versions/update", {"name": "m", "version": "2", "description": "new"}),
    ("PATCH", "registered-models/update", {"name": "m", "description": "new"}),
    ("GET", "model-versions/get-download-uri", {"name": "m", "version": "2"}),
    ("DELETE", "registered-models/alias", {"name": "m", "alias": "champion"}),
    ("DELETE", "registered-models/alias", {"name": "m", "alias": "champion"}),
    ("GET", "registered-models/alias", {"name": "m", "alias": "champion"}),
    ("GET", "model-versions/get", {"name": "m", "version": "x"}),
    ("POST", "model-versions/transition-stage", {"name": "m", "version": "1", "stage": "bogus", "archive_existing_versions": False}),
    ("GET", "registered-models/search", {"max_results": "5000"}),
    ("GET", "registered-models/search", {"page_token": "zzz"}),
    ("GET", "model-versions/search", {"filter": "name='m'", "order_by": "version_number DESC", "max_results": "1"}),
    ("POST", "registered-models/create", {"name": "nodesc"}),
    ("GET", "registered-models/search", {"filter": "name = 'nodesc'"}),
    ("POST", "registered-models/rename", {"name": "m", "new_name": "m2"}),
    ("DELETE", "model-versions/delete", {"name": "m2", "version": "2"}),
    ("POST", "model-versions/transition-stage", {"name": "m2", "version": "1", "stage": "Archived", "archive_existing_versions": False}),
    ("DELETE", "registered-models/delete", {"name": "m2"}),
]  # fmt: skip


def call(
    base: str, method: str, path: str, params: dict[str, Any], token: str = ""
) -> tuple[int, Any]:
    url = f"{base}/api/2.0/mlflow/{path}"
    data = None
    if method == "GET":
        url += "?" + urllib.parse.urlencode(params)
    else:
        data = json.dumps(params).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode(errors="replace")[:80]


def shape(value: Any, prefix: str = "") -> set[str]:
    """Every key path with its value's type; list items share the path ``[]``."""
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            found |= shape(item, f"{prefix}.{key}" if prefix else key)
        return found or {f"{prefix}:{{}}"}
    if isinstance(value, list):
        found = set()
        for item in value:
            found |= shape(item, prefix + "[]")
        return found or {f"{prefix}:[]"}
    return {f"{prefix}:{type(value).__name__}"}


def start_mlflow(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (workdir / "mlflow.log").open("wb")
    process = subprocess.Popen(
        [
            binary, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination", str(workdir / "mlartifacts"),
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"mlflow server did not start: {(workdir / 'mlflow.log').read_text()[-2000:]}")


def latencies(url: str, versions: int, token: str = "", repeats: int = 40) -> dict[str, float]:
    """p50 in ms of MLflow client calls against the server at ``url``."""
    import statistics
    import warnings

    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    from mlflow import MlflowClient

    warnings.simplefilter("ignore")
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    client.create_registered_model("perf")
    created = []
    for i in range(versions):
        start = time.perf_counter()
        client.create_model_version(
            "perf", f"s3://bucket/perf/{i}", run_id=f"run{i}", tags={"parity": str(i % 2)}
        )
        created.append((time.perf_counter() - start) * 1000)
    client.set_registered_model_alias("perf", "champion", "1")
    calls = {
        "get_model_version": lambda: client.get_model_version("perf", "1"),
        "get_model_version_by_alias": lambda: client.get_model_version_by_alias("perf", "champion"),
        "search_model_versions (tag, 100)": lambda: client.search_model_versions(
            "name = 'perf' AND tags.parity = '1'", max_results=100
        ),
    }
    result = {"create_model_version": statistics.median(created)}
    for name, fn in calls.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        result[name] = statistics.median(times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", required=True, help="the mlflow executable of a scratch venv")
    parser.add_argument("--versions", type=int, default=0, help="also time calls at N versions")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cmr-mlflow-shapes-"))
    from crucible_model_registry import Registry

    database = f"sqlite:///{workdir / 'cmr.db'}"
    Registry.from_url(database).migrate()
    ours = start_registry_server(database, workdir / "cmr")
    theirs, theirs_url = start_mlflow(args.mlflow, workdir)
    same = 0
    try:
        print(f"{'call':<48} {'mlflow':>6} {'cmr':>6}  shape")
        for method, path, params in CALLS:
            their_status, their_doc = call(theirs_url, method, path, params)
            our_status, our_doc = call(ours.url, method, path, params, ours.token)
            their_shape, our_shape = shape(their_doc), shape(our_doc)
            verdict = "same" if their_shape == our_shape else "differs"
            same += verdict == "same" and their_status == our_status
            print(f"{method + ' ' + path:<48} {their_status:>6} {our_status:>6}  {verdict}")
            if their_shape != our_shape:
                for line in sorted(their_shape - our_shape):
                    print(f"{'':>8}only mlflow: {line}")
                for line in sorted(our_shape - their_shape):
                    print(f"{'':>8}only cmr:    {line}")
            if isinstance(their_doc, dict) and "error_code" in their_doc:
                ours_code = our_doc.get("error_code") if isinstance(our_doc, dict) else our_doc
                print(f"{'':>8}error_code mlflow={their_doc['error_code']} cmr={ours_code}")
        print(f"\n{same}/{len(CALLS)} calls: same status and same JSON shape")
        if args.versions:
            load = os.getloadavg()
            theirs_ms = latencies(theirs_url, args.versions)
            ours_ms = latencies(ours.url, args.versions, ours.token)
            print(f"\np50 ms at {args.versions} versions (load {load[0]:.2f}, 1 worker, SQLite)")
            print(f"{'call':<36} {'mlflow':>8} {'cmr':>8} {'ratio':>6}")
            for name, value in theirs_ms.items():
                ratio = value / ours_ms[name]
                print(f"{name:<36} {value:>8.1f} {ours_ms[name]:>8.1f} {ratio:>5.1f}x")
    finally:
        ours.stop()
        theirs.terminate()
        theirs.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
