"""``cmr serve --workers 2``: one /metrics over both workers, and a graceful SIGTERM.

Two uvicorn worker processes share the listening socket. Their Prometheus counters live in
files of ``PROMETHEUS_MULTIPROC_DIR`` (one per process), and whichever worker answers
``/metrics`` adds up all of them. SIGTERM to the server stops it accepting, lets requests
in flight finish (here an artifact upload still streaming its body), then exits: the
upload is recorded with all its bytes and nothing is left half-written.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.servers.registry_server import RegistryServer, start_registry_server

from crucible_model_registry.registry import Registry
from crucible_model_registry.storage.local import LocalStorage

VERSION = {"model_name": "m", "recipe": "sft", "base_model": "base", "training_config": {}}


@pytest.fixture
def two_workers(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[RegistryServer, Path]]:
    """``cmr serve --workers 2`` over a SQLite copy, with its metrics directory."""
    shutil.copyfile(sqlite_template, tmp_path / "registry.db")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # a dead run's file
    server = start_registry_server(
        f"sqlite:///{tmp_path / 'registry.db'}",
        tmp_path / "work",
        workers=2,
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    yield server, metrics_dir
    server.stop()


def healthz_count(client: httpx2.Client, url: str) -> float:
    """The ``/healthz`` 200s in the /metrics answer of whichever worker takes the request."""
    text = client.get(f"{url}/metrics", headers={"connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "cmr_http_requests_total"
                and labels.get("route") == "/healthz"
                and labels.get("status") == "200"
            ):
                return sample.value
    return 0.0


def test_metrics_add_up_both_workers(two_workers: tuple[RegistryServer, Path]) -> None:
    server, metrics_dir = two_workers
    assert not (metrics_dir / "counter_999999.db").exists()  # serve wiped the stale file
    sent = 0
    with httpx2.Client(timeout=10) as client:
        # A fresh connection per request, until both workers have answered some.
        deadline = time.monotonic() + 60
        while len(list(metrics_dir.glob("counter_*.db"))) < 2 or sent < 20:
            assert time.monotonic() < deadline, "one worker took every connection"
            assert client.get(f"{server.url}/healthz", headers={"connection": "close"}).is_success
            sent += 1
        # The counter is incremented after the answer is sent: wait for the last ones.
        deadline = time.monotonic() + 10
        while healthz_count(client, server.url) != sent and time.monotonic() < deadline:
            time.sleep(0.05)
        # Every answer, from either worker, counts the requests both of them served.
        assert [healthz_count(client, server.url) for _ in range(10)] == [sent] * 10


def test_sigterm_finishes_an_upload_in_flight(
    two_workers: tuple[RegistryServer, Path], tmp_path: Path
) -> None:
    server, _ = two_workers
    answer = httpx2.post(
        f"{server.url}/api/v1/versions", json=VERSION, headers=server.auth, timeout=10
    )
    answer.raise_for_status()
    chunk = b"w" * 65536
    chunks = 48  # 3 MiB, sent over ~1.5 s
    halfway = threading.Event()

    def body() -> Iterator[bytes]:
        for n in range(chunks):
            if n == chunks // 3:
                halfway.set()
            time.sleep(0.03)
            yield chunk

    answer: list[httpx2.Response | BaseException] = []

    def upload() -> None:
        try:
            answer.append(
                httpx2.put(
                    f"{server.url}/api/v1/versions/m@1/artifacts/checkpoint",
                    params={"name": "model.bin"},
                    content=body(),
                    headers={"content-type": "application/octet-stream", **server.auth},
                    timeout=60,
                )
            )
        except BaseException as exc:
            answer.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert halfway.wait(30)
    server.process.send_signal(signal.SIGTERM)
    uploader.join(60)
    exit_code = server.process.wait(60)

    response = answer[0]
    assert isinstance(response, httpx2.Response), response
    assert response.status_code == 201, response.text
    assert exit_code in (0, -signal.SIGTERM)
    # The server is gone: new connections are refused.
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.url}/healthz", timeout=2)
    # The upload is whole, verified and consistent; no temporary file is left behind.
    registry = Registry.from_url(server.database_url, storage=LocalStorage(server.storage_dir))
    try:
        artifacts = registry.get_version("m@1").artifacts
        assert len(artifacts) == 1
        assert artifacts[0].size_bytes == len(chunk) * chunks
        assert artifacts[0].checksum == hashlib.sha256(chunk * chunks).hexdigest()
        assert registry.verify_artifact(artifacts[0])
        assert registry.check().ok
    finally:
        registry.close()
    # The file, and its content-addressed link under .cmr-blobs (the same inode).
    stored = [p for p in server.storage_dir.rglob("*") if p.is_file()]
    named = [p for p in stored if ".cmr-blobs" not in p.parts]
    assert [p.name for p in named] == ["model.bin"]
    blobs = [p for p in stored if ".cmr-blobs" in p.parts]
    assert [p.stat().st_ino for p in blobs] == [named[0].stat().st_ino]
    log = server.log.read_text()
    assert log.count("Application shutdown complete") == 2  # both workers shut down cleanly


def test_a_temporary_metrics_directory_is_removed_on_sigterm(
    sqlite_template: Path, tmp_path: Path
) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "registry.db")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = start_registry_server(
        f"sqlite:///{tmp_path / 'registry.db'}",
        tmp_path / "work",
        workers=2,
        extra_env={"TMPDIR": str(scratch)},
    )
    try:
        assert server.get("/healthz")[0] == 200
        made = list(scratch.glob("cmr-metrics-*"))
        assert len(made) == 1
    finally:
        exit_code = server.stop()
    assert exit_code in (0, -signal.SIGTERM)
    assert not made[0].exists()
