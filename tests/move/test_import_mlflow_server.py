"""``import_mlflow`` from a running ``mlflow server`` (3.17.2): its REST API and artifact proxy.

The server serves a copy of the SQLite registry MLflow wrote for the other importer tests,
plus a model registered through the server itself, whose files live behind its
``mlflow-artifacts`` proxy. Importing through REST must give what importing the same
database directly gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.move.conftest import read_export
from tests.move.mlflow_registry import client, quiet

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"mlflow server did not answer in 120 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def mlflow_server(
    mlflow_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, bytes]]:
    """(server URL, its database file, the bytes of a file behind its artifact proxy)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    db = root / "mlflow.db"
    shutil.copyfile(mlflow_sqlite_template, db)
    port = _free_port()
    log = root / "server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(mlflow), "server",
                "--backend-store-uri", f"sqlite:///{db}",
                "--artifacts-destination", str(root / "proxied"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            start_new_session=True,  # its workers are its children: stop them with it
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process, log)
        served = root / "served-model"
        served.mkdir()
        payload = os.urandom(4096)
        (served / "model.bin").write_bytes(payload)
        c = client(url)
        with quiet():
            experiment = c.create_experiment("served")
            run = c.create_run(experiment).info.run_id
            c.log_artifacts(run, str(served), artifact_path="model")
            c.create_registered_model("served-model")
            c.create_model_version("served-model", f"runs:/{run}/model", run_id=run)
        yield url, db, payload
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_rest_import_equals_the_database_import(
    mlflow_server: tuple[str, Path, bytes], make_registry: Any, tmp_path: Path
):
    url, db, _ = mlflow_server
    over_rest, direct = make_registry("rest"), make_registry("direct")
    rest_report = over_rest.import_mlflow(url)
    db_report = direct.import_mlflow(f"sqlite:///{db}")
    assert rest_report.imported == db_report.imported
    # The server hides prompts from its model search; the database shows them (unmapped).
    assert {(u.kind, u.ref) for u in rest_report.unmapped} == {
        (u.kind, u.ref) for u in db_report.unmapped
    } - {("models", "summarise-prompt")}
    over_rest.export_to(tmp_path / "rest")
    direct.export_to(tmp_path / "direct")
    assert read_export(tmp_path / "rest") == read_export(tmp_path / "direct")
    again = over_rest.import_mlflow(url)
    assert not again.changed


def test_rest_copy_goes_through_the_artifact_proxy(
    mlflow_server: tuple[str, Path, bytes], make_registry: Any
):
    url, _, payload = mlflow_server
    registry = make_registry("copied")
    report = registry.import_mlflow(url, models="*model", copy_artifacts=True)
    assert report.imported["artifacts"] == 1
    (artifact,) = registry.get_version("served-model@1").artifacts
    files = {entry["path"]: entry["sha256"] for entry in artifact.manifest or []}
    assert files == {"model.bin": hashlib.sha256(payload).hexdigest()}
    assert registry.verify_artifact(artifact)
    # Files behind a runs:/ source on this machine's disk come over too.
    local = registry.import_mlflow(url, models="churn", copy_artifacts=True)
    assert local.imported["artifacts"] == 3
