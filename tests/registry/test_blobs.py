"""Content-addressed artifact bytes (issue 21, item 4): stored once, counted, never lost.

Every test runs on SQLite and PostgreSQL, on local disk (hard links) and through the moto S3
server (server-side copies, ``content_addressed=True``); the last ones through a server.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.servers.registry_server import RegistryServer
from tests.servers.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer
from tests.storage.contract import MiB, sha256_of, write_file

from crucible_model_registry import Registry
from crucible_model_registry.domain.records import ModelVersion
from crucible_model_registry.errors import StorageError
from crucible_model_registry.storage.base import BLOB_ROOT, TransferResult
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.s3 import S3Storage
from crucible_model_registry.store.tables import BLOB_PINS, BLOB_REFS, PENDING_UPLOADS

MODEL = "org/llama-sft"
S3_PREFIX = "team/registry"


class Hooked:
    """Runs ``hook`` once, just before the backend links a blob: a window into an upload
    that has hashed its file, pinned the blob and not yet reused it."""

    hook: Callable[[], None] | None = None

    def link_blob(self, sha256: str, remote_path: str, *, size_bytes: int) -> TransferResult | None:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        linked: TransferResult | None = super().link_blob(  # type: ignore[misc]
            sha256, remote_path, size_bytes=size_bytes
        )
        return linked


class HookedLocal(Hooked, LocalStorage):
    pass


class HookedS3(Hooked, S3Storage):
    pass


def _s3(server: MotoServer, bucket: str) -> HookedS3:
    return HookedS3(
        bucket,
        prefix=S3_PREFIX,
        region=REGION,
        endpoint_url=server.endpoint_url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        content_addressed=True,
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Hooked:
    if request.param == "local":
        return HookedLocal(tmp_path / "artifacts")
    return _s3(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket"))


@pytest.fixture
def reg(db_url: str, backend: Hooked) -> Iterator[Registry]:
    registry = Registry.from_url(db_url, storage=backend)  # type: ignore[arg-type]
    yield registry
    registry.close()


def register(registry: Registry, version: str) -> ModelVersion:
    return registry.register(
        model_name=MODEL,
        version=f"ft-{version}",
        recipe="sl_basic",
        base_model="meta-llama/Llama-3.1-8B",
        training_config={"run": uuid.uuid4().hex},
    )


def blobs(backend: object) -> set[str]:
    """The SHA-256 of every blob the backend holds."""
    if isinstance(backend, LocalStorage):
        root = backend.base_path / BLOB_ROOT
        return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    assert isinstance(backend, S3Storage)
    client = backend._client
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=backend.bucket, Prefix=f"{S3_PREFIX}/{BLOB_ROOT}/"
    )
    return {obj["Key"].rsplit("/", 1)[-1] for page in pages for obj in page.get("Contents", [])}


def refs(registry: Registry) -> list[tuple[int, str]]:
    with registry.engine.connect() as conn:
        rows = conn.execute(select(BLOB_REFS.c.artifact_id, BLOB_REFS.c.sha256))
        return sorted((r[0], r[1]) for r in rows)


def leftovers(registry: Registry) -> tuple[int, int]:
    """(claims, pins) still in the database."""
    with registry.engine.connect() as conn:
        claims = len(conn.execute(select(PENDING_UPLOADS.c.storage_path)).all())
        pins = len(conn.execute(select(BLOB_PINS.c.sha256)).all())
    return claims, pins


def same_inode(backend: object, a: str, b: str) -> bool:
    assert isinstance(backend, LocalStorage)
    return (backend.base_path / a).stat().st_ino == (backend.base_path / b).stat().st_ino


# --------------------------------------------------------------------------- stored once


def test_identical_bytes_are_stored_once_and_sent_once(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "model.bin", 6 * MiB + 3, seed=7)
    v1, v2 = register(reg, "1"), register(reg, "2")

    a1 = reg.upload_artifact(v1, "checkpoint", src)
    a2 = reg.upload_artifact(v2, "checkpoint", src)

    assert a1.checksum == a2.checksum == sha256_of(src)
    assert a1.storage_path != a2.storage_path  # records keep their human paths
    assert blobs(backend) == {sha256_of(src)}
    assert refs(reg) == sorted([(a1.id, sha256_of(src)), (a2.id, sha256_of(src))])
    if isinstance(backend, LocalStorage):
        assert same_inode(backend, a1.storage_path, a2.storage_path)
    for a in (a1, a2):
        out = tmp_path / f"out-{a.id}.bin"
        reg.download_artifact(a, out)
        assert sha256_of(out) == sha256_of(src)
        assert reg.verify_artifact(a) is True
    assert leftovers(reg) == (0, 0)
    assert reg.check().ok


def test_folders_share_their_common_files(reg: Registry, backend: Hooked, tmp_path: Path) -> None:
    shared = {"tokenizer.json": 1, "shard-1.safetensors": 2}
    trees = []
    for i in range(2):
        root = tmp_path / f"ft{i}"
        for name, seed in shared.items():
            write_file(root / name, 6 * MiB, seed=seed)
        write_file(root / "shard-2.safetensors", 6 * MiB, seed=100 + i)  # same size, own bytes
        trees.append(root)
    versions = [register(reg, str(i)) for i in range(2)]

    first = reg.upload_artifact(versions[0], "checkpoint", trees[0])
    second = reg.upload_artifact(versions[1], "checkpoint", trees[1])

    files = {e["sha256"] for a in (first, second) for e in a.manifest or []}
    assert len(files) == 4  # two shared, two own
    assert blobs(backend) == files
    for a, tree in zip((first, second), trees, strict=True):
        out = tmp_path / f"out-{a.id}"
        reg.download_artifact(a, out)
        assert {p.name: sha256_of(p) for p in out.iterdir()} == {
            p.name: sha256_of(p) for p in tree.iterdir()
        }
    assert reg.check().ok


# --------------------------------------------------------------------------- counted


def test_a_blob_goes_with_the_last_record_that_references_it(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "model.bin", 1000, seed=1)
    a1 = reg.upload_artifact(register(reg, "1"), "checkpoint", src)
    a2 = reg.upload_artifact(register(reg, "2"), "checkpoint", src)

    reg.delete_artifact(a1)

    assert blobs(backend) == {sha256_of(src)}
    assert refs(reg) == [(a2.id, sha256_of(src))]
    reg.download_artifact(a2, tmp_path / "out.bin")
    assert sha256_of(tmp_path / "out.bin") == sha256_of(src)

    reg.delete_artifact(a2)

    assert blobs(backend) == set()
    assert refs(reg) == []
    assert reg.check().ok


def test_gc_removes_only_blobs_nothing_references(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    kept_src = write_file(tmp_path / "kept.bin", 1000, seed=1)
    gone_src = write_file(tmp_path / "gone.bin", 2000, seed=2)
    v1, v2 = register(reg, "1"), register(reg, "2")
    kept = reg.upload_artifact(v1, "checkpoint", kept_src)
    reg.upload_artifact(v2, "checkpoint", kept_src)
    reg.upload_artifact(v2, "config", gone_src)

    reg.delete_version(v2.id)  # records only: its bytes are for gc now

    assert blobs(backend) == {sha256_of(kept_src), sha256_of(gone_src)}
    report = reg.collect_garbage()

    removed = {i.path.rsplit("/", 1)[-1] for i in report.items if i.path.startswith(BLOB_ROOT)}
    assert removed == {sha256_of(gone_src)}
    assert blobs(backend) == {sha256_of(kept_src)}
    assert reg.verify_artifact(kept) is True
    assert reg.collect_garbage().items == []
    assert reg.check().ok


def test_an_upload_reusing_a_blob_keeps_it_from_deletion_and_gc(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "model.bin", 6 * MiB, seed=3)
    first = reg.upload_artifact(register(reg, "1"), "checkpoint", src)
    v2 = register(reg, "2")
    deletions: list[object] = []

    def meanwhile() -> None:
        # The second upload has hashed the file and pinned its blob: the last record
        # referencing the blob goes, and gc runs, before the blob is reused.
        deletions.append(reg.delete_artifact(first))
        deletions.append(reg.collect_garbage(older_than=timedelta(0)))
        assert blobs(backend) == {sha256_of(src)}

    backend.hook = meanwhile
    second = reg.upload_artifact(v2, "checkpoint", src)

    assert len(deletions) == 2
    assert backend.hook is None
    assert blobs(backend) == {sha256_of(src)}
    assert refs(reg) == [(second.id, sha256_of(src))]
    assert reg.verify_artifact(second) is True
    assert leftovers(reg) == (0, 0)
    assert reg.check().ok


def test_a_blob_removed_under_an_upload_costs_a_transfer_not_the_bytes(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "model.bin", 1000, seed=4)
    reg.upload_artifact(register(reg, "1"), "checkpoint", src)
    v2 = register(reg, "2")
    sha = sha256_of(src)
    # Nothing the registry does removes a pinned blob; a person or another tool may.
    backend.hook = lambda: backend.delete_blob(sha)  # type: ignore[attr-defined]

    second = reg.upload_artifact(v2, "checkpoint", src)

    assert reg.verify_artifact(second) is True
    assert blobs(backend) == {sha}  # made again from the upload
    assert reg.check().ok


# --------------------------------------------------------------------------- failures


class Interrupted(Exception):
    """Raised from a progress callback: the upload stops half-way."""


def test_a_failure_mid_upload_leaves_nothing_visible(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    tree = tmp_path / "ckpt"
    write_file(tree / "a-shared.bin", 6 * MiB, seed=1)
    write_file(tree / "b-own.bin", 6 * MiB, seed=2)
    write_file(tree / "c-own.bin", 6 * MiB, seed=3)
    earlier = reg.upload_artifact(register(reg, "1"), "config", tree / "a-shared.bin")
    v2 = register(reg, "2")
    sent = []

    def progress(n: int) -> None:
        sent.append(n)
        if sum(sent) > 13 * MiB:  # a-shared was linked, b-own sent, c-own under way
            raise Interrupted

    with pytest.raises(Interrupted):
        reg.upload_artifact(v2, "checkpoint", tree, progress=progress)

    assert reg.get_version(v2.id).artifacts == []
    assert blobs(backend) == {earlier.checksum}  # b-own's new blob went with the failure
    assert leftovers(reg) == (0, 0)
    assert reg.collect_garbage().items == []  # nothing of the failed upload is left
    assert reg.verify_artifact(earlier) is True
    assert reg.check().ok


# --------------------------------------------------------------------------- concurrency


def test_concurrent_uploads_of_identical_bytes_in_threads(
    reg: Registry, backend: Hooked, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "model.bin", 6 * MiB, seed=5)
    reg.upload_artifact(register(reg, "0"), "config", write_file(tmp_path / "x", 6 * MiB, seed=6))
    versions = [register(reg, str(i)) for i in range(1, 5)]
    barrier = threading.Barrier(len(versions))
    results: list[Any] = []

    def upload(v: ModelVersion) -> None:
        barrier.wait()
        results.append(reg.upload_artifact(v, "checkpoint", src))

    threads = [threading.Thread(target=upload, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == len(versions)
    assert sha256_of(src) in blobs(backend)
    if isinstance(backend, LocalStorage):  # whoever lost the race to make the blob links it
        inodes = {(backend.base_path / a.storage_path).stat().st_ino for a in results}
        assert len(inodes) == 1
    for a in results:
        assert reg.verify_artifact(a) is True
    assert leftovers(reg) == (0, 0)
    assert reg.check().ok


def _upload_in_process(db_url: str, root: str, src: str, version_id: int, go: Any) -> None:
    registry = Registry.from_url(db_url, storage=LocalStorage(root))
    try:
        go.wait()
        registry.upload_artifact(version_id, "checkpoint", src)
    finally:
        registry.close()


def test_concurrent_uploads_of_identical_bytes_in_processes(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    reg = Registry.from_url(db_url, storage=LocalStorage(root))
    try:
        src = write_file(tmp_path / "model.bin", 6 * MiB, seed=8)
        reg.upload_artifact(register(reg, "0"), "checkpoint", src)  # the blob exists: both reuse
        versions = [register(reg, str(i)) for i in (1, 2)]
        ctx = mp.get_context("spawn")
        go = ctx.Event()
        procs = [
            ctx.Process(target=_upload_in_process, args=(db_url, str(root), str(src), v.id, go))
            for v in versions
        ]
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
        artifacts = [reg.get_version(v.id).artifacts[0] for v in versions]
        for a in artifacts:
            assert reg.verify_artifact(a) is True
        inodes = {(root / a.storage_path).stat().st_ino for a in artifacts}
        assert len(inodes) == 1  # both linked to the one blob
        assert blobs(reg.storage_backend()) == {sha256_of(src)}
        assert leftovers(reg) == (0, 0)
        assert reg.check().ok
    finally:
        reg.close()


# --------------------------------------------------------------------------- compatibility


def test_artifacts_stored_before_blobs_keep_working(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    src = write_file(tmp_path / "model.bin", 1000, seed=9)
    plain = Registry.from_url(db_url, storage=LocalStorage(root, content_addressed=False))
    try:
        old = plain.upload_artifact(register(plain, "1"), "checkpoint", src)
    finally:
        plain.close()
    reg = Registry.from_url(db_url, storage=LocalStorage(root))
    try:
        new = reg.upload_artifact(register(reg, "2"), "checkpoint", src)  # no blob to reuse yet

        assert refs(reg) == [(new.id, sha256_of(src))]
        assert reg.verify_artifact(old) is True
        assert reg.delete_artifact(old).bytes_deleted
        assert not (root / old.storage_path).exists()
        assert reg.verify_artifact(new) is True
        assert blobs(reg.storage_backend()) == {sha256_of(src)}
        assert reg.check().ok
    finally:
        reg.close()


def test_a_broken_blob_store_fails_the_upload_cleanly(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    (root / ".cmr-blobs").mkdir(parents=True)
    (root / ".cmr-blobs" / "sha256").write_text("not a directory")
    reg = Registry.from_url(db_url, storage=LocalStorage(root))
    try:
        v = register(reg, "1")
        a = reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 100))
        # The artifact does not need its blob: stored and recorded, only not deduplicated.
        assert reg.verify_artifact(a) is True
        assert refs(reg) == []
        with pytest.raises(StorageError):
            LocalStorage(root).adopt_blob(a.storage_path, a.checksum or "")
    finally:
        reg.close()


@pytest.mark.remote
def test_uploads_through_a_server_are_stored_once(
    remote_server_sqlite: RegistryServer, tmp_path: Path
) -> None:
    from tests.registry.conftest import InspectableRemoteRegistry

    remote_server_sqlite.reset()
    reg = InspectableRemoteRegistry(remote_server_sqlite)
    try:
        src = write_file(tmp_path / "model.bin", 2 * MiB, seed=10)
        a1 = reg.upload_artifact(register(reg, "1"), "checkpoint", src)
        a2 = reg.upload_artifact(register(reg, "2"), "checkpoint", src)
        store = remote_server_sqlite.storage_dir
        assert (store / a1.storage_path).stat().st_ino == (store / a2.storage_path).stat().st_ino
        assert reg.verify_artifact(a2) is True
        reg.delete_artifact(a1)
        reg.delete_artifact(a2)
        assert not (store / ".cmr-blobs").exists() or not any(
            p.is_file() for p in (store / ".cmr-blobs").rglob("*")
        )
        assert reg.check().ok
    finally:
        reg.close()
