"""Upload claims under real processes (issue 14, findings 2 and 3).

A claim is owned by the token of the process that took it and kept alive by its lease:

* deleting a version while an upload to it is under way is refused (finding 2), so the
  upload's cleanup can never delete the bytes of a later upload to the same path;
* an upload whose lease ran out (it stalled) loses its path, and its cleanup then leaves
  the path alone: the bytes there may be another upload's;
* a live claim is never taken over because its process id is unknown here (finding 3:
  another PID namespace with the same host name).

Process A uploads in a spawned interpreter and stops inside its progress callback until
the test releases it, so every interleaving below happens in the same order on every run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from crucible_model_registry import NotFoundError, Registry, ValidationError
from crucible_model_registry.storage import LocalStorage
from crucible_model_registry.store.tables import PENDING_UPLOADS

MODEL = "claims"
TIMEOUT = 60.0
P = PENDING_UPLOADS.c


# --------------------------------------------------------------------------- process A


def upload_and_wait(
    url: str, base_path: str, source: str, started: Any, go: Any, results: Any
) -> None:
    """Upload ``source`` to claims@2.0 as big.bin, pausing after the first chunk until ``go``."""
    registry = Registry.from_url(url, storage=LocalStorage(base_path))

    def progress(_n: int) -> None:
        if not started.is_set():
            started.set()
            go.wait(TIMEOUT)

    try:
        artifact = registry.upload_artifact(
            f"{MODEL}@2.0", "checkpoint", source, name="big.bin", progress=progress
        )
        results.put(("uploaded", artifact.id, artifact.checksum))
    except Exception as exc:
        results.put(("error", type(exc).__name__, getattr(exc, "errors", None)))
    finally:
        started.set()
        registry.close()


class Uploader:
    """Process A: started, paused mid-upload, released, joined."""

    def __init__(self, url: str, base_path: Path, source: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.started, self.go, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.process = ctx.Process(
            target=upload_and_wait,
            args=(url, str(base_path), str(source), self.started, self.go, self.results),
        )
        self.process.start()
        assert self.started.wait(TIMEOUT), "the upload did not start"

    def finish(self) -> tuple[Any, ...]:
        self.go.set()
        result: tuple[Any, ...] = self.results.get(timeout=TIMEOUT)
        self.process.join(TIMEOUT)
        return result

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(TIMEOUT)


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    source = tmp_path / "big.bin"
    # Several chunks, so that A is paused with most of its bytes still to send.
    source.write_bytes(os.urandom(4 * 1024 * 1024))
    return source


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def shared(db_url: str, storage_root: Path) -> Iterator[Registry]:
    """The test's own registry on the database and storage process A uses."""
    registry = Registry.from_url(db_url, storage=LocalStorage(storage_root))
    registry.register(
        model_name=MODEL, version="2.0", recipe="sft", base_model="b", training_config={"r": 1}
    )
    yield registry
    registry.close()


@pytest.fixture
def uploader(db_url: str, storage_root: Path, big_file: Path) -> Iterator[Any]:
    started: list[Uploader] = []

    def start() -> Uploader:
        a = Uploader(db_url, storage_root, big_file)
        started.append(a)
        return a

    yield start
    for a in started:
        a.kill()


def _claims(registry: Registry) -> list[tuple[str, int, datetime]]:
    with registry.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(P.storage_path, P.pid, P.started_at))]


# --------------------------------------------------------------------------- finding 2


def test_deleting_a_version_with_an_upload_under_way_is_refused(shared: Registry, uploader):
    a = uploader()
    before = shared.get_version(f"{MODEL}@2.0")

    with pytest.raises(ValidationError) as caught:
        shared.delete_version(f"{MODEL}@2.0", force=True)

    assert set(caught.value.errors) == {"version"}
    assert shared.get_version(f"{MODEL}@2.0") == before
    assert len(_claims(shared)) == 1
    outcome = a.finish()
    assert outcome[0] == "uploaded", outcome
    assert [x.id for x in shared.get_version(f"{MODEL}@2.0").artifacts] == [outcome[1]]
    assert shared.verify_artifact(outcome[1])
    shared.delete_version(f"{MODEL}@2.0", force=True)  # once the upload is done, it may go
    with pytest.raises(NotFoundError):
        shared.get_version(f"{MODEL}@2.0")


def test_a_stalled_upload_that_lost_its_claim_never_deletes_a_later_uploads_bytes(
    shared: Registry, uploader, big_file: Path
):
    a = uploader()
    # A stalls past its lease: its claim expires (as if it had not renewed it for LEASE).
    past = datetime.now(UTC) - timedelta(days=2)
    expired = {name: past for name in ("started_at", "expires_at") if name in P}
    with shared.engine.begin() as conn:
        conn.execute(update(PENDING_UPLOADS).values(**expired))
    shared.delete_version(f"{MODEL}@2.0", force=True)
    shared.register(
        model_name=MODEL, version="2.0", recipe="sft", base_model="b", training_config={"r": 2}
    )
    # B uploads the same bytes, so that A's late rename (storage swaps files atomically)
    # leaves them intact and only a cleanup that deletes could destroy them.
    b = shared.upload_artifact(f"{MODEL}@2.0", "checkpoint", big_file, name="big.bin")
    assert shared.verify_artifact(b.id)

    outcome = a.finish()

    assert outcome[0] == "error", outcome
    assert outcome[1] in ("ValidationError", "NotFoundError"), outcome
    assert shared.verify_artifact(b.id)  # B's bytes are still there
    version = shared.get_version(f"{MODEL}@2.0")
    assert [x.id for x in version.artifacts] == [b.id]
    assert _claims(shared) == []


# --------------------------------------------------------------------------- finding 3


def _pid_unknown_here() -> int:
    # A pid that no process of this namespace has, as a container's process looks from here.
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_live_claim_is_not_taken_over_when_its_pid_is_unknown_on_this_host(
    shared: Registry, uploader, tmp_path: Path
):
    a = uploader()
    [(path, _pid, started_at)] = _claims(shared)
    stranger = _pid_unknown_here()
    # Same host name, a pid this namespace cannot see: A in another container.
    with shared.engine.begin() as conn:
        conn.execute(update(PENDING_UPLOADS).values(pid=stranger))
    other = tmp_path / "other.bin"
    other.write_bytes(b"other bytes")

    with pytest.raises(ValidationError) as caught:
        shared.upload_artifact(f"{MODEL}@2.0", "checkpoint", other, name="big.bin")

    assert set(caught.value.errors) == {"path"}
    assert _claims(shared) == [(path, stranger, started_at)]  # still A's
    outcome = a.finish()
    assert outcome[0] == "uploaded", outcome
    assert shared.verify_artifact(outcome[1])
