"""Artifacts through the registry (API.md §6, §7) on local disk, S3 (moto) and the Hub double.

Every test runs on SQLite and PostgreSQL; the ``store`` fixture adds the three backends and
a look past each one at what it really holds, so a test can assert that nothing was left
behind. The S3 and Hub servers are the loopback doubles of ``tests/servers``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy import func, insert, select, update
from tests.registry.conftest import InspectableRemoteRegistry
from tests.servers.hub import HubDouble
from tests.servers.registry_server import RegistryServer
from tests.servers.s3 import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    s3_client,
    start_moto_server,
)
from tests.storage.contract import MiB, make_tree, sha256_of, write_file

import crucible_model_registry as cmr
from crucible_model_registry import (
    Artifact,
    ArtifactType,
    ChecksumMismatchError,
    ConfigurationError,
    ModelVersion,
    NotFoundError,
    Registry,
    StorageError,
    ValidationError,
    telemetry,
)
from crucible_model_registry.storage.base import StorageBackend
from crucible_model_registry.storage.huggingface import HuggingFaceStorage
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.manifest import MANIFEST_NAME
from crucible_model_registry.storage.model_card import CARD_KEY
from crucible_model_registry.storage.s3 import S3Storage
from crucible_model_registry.store.tables import ARTIFACTS, PENDING_UPLOADS

pytestmark = [
    # huggingface_hub hands httpx2 a file object as `data=` for LFS PUTs; httpx2 deprecates that.
    pytest.mark.filterwarnings(
        "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
    ),
]

MODEL = "org/llama-sft"
BASE = "meta-llama/Llama-3.1-8B"
LAYOUT = f"{MODEL}/1.0.0"  # <model>/<version>: every artifact of the test version lives below
S3_PREFIX = "team/registry"
HUB_FILES = {".gitattributes", "README.md"}  # what the Hub itself (or the model card) adds


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Store:
    """A backend, plus a look past it at what is really stored there."""

    backend: StorageBackend
    stored: Callable[[], set[str]]  # every stored file, relative to the backend's root
    corrupt: Callable[[str], None]  # flip a byte of the file stored at a relative path
    # The content-addressed blobs (relative paths), which `stored` leaves out.
    blobs: Callable[[], set[str]] = set


def local_store(root: Path) -> Store:
    backend = LocalStorage(root)

    def stored() -> set[str]:
        base = backend.base_path
        if not base.exists():
            return set()
        return everything() - blobs()

    def everything() -> set[str]:
        base = backend.base_path
        if not base.exists():
            return set()
        return {p.relative_to(base).as_posix() for p in base.rglob("*") if not p.is_dir()}

    def blobs() -> set[str]:
        return {p for p in everything() if p.startswith(".cmr-blobs/")}

    def corrupt(rel: str) -> None:
        path = backend.base_path / rel
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))

    return Store(backend, stored, corrupt, blobs)


def s3_store(
    endpoint_url: str, bucket: str, *, inspect_url: str | None = None, **opts: Any
) -> Store:
    """An S3 backend on ``endpoint_url``; stored objects are listed through ``inspect_url``."""
    backend = S3Storage(
        bucket,
        prefix=S3_PREFIX,
        region=REGION,
        endpoint_url=endpoint_url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        # Off by default on S3; on here so the whole artifact suite runs through blobs.
        **{"content_addressed": True, **opts},
    )
    client = s3_client(inspect_url or endpoint_url)

    def everything() -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = {obj["Key"] for page in pages for obj in page.get("Contents", [])}
        assert all(key.startswith(S3_PREFIX + "/") for key in keys)
        return {key[len(S3_PREFIX) + 1 :] for key in keys}

    def blobs() -> set[str]:
        return {p for p in everything() if p.startswith(".cmr-blobs/")}

    def stored() -> set[str]:
        return everything() - blobs()

    def corrupt(rel: str) -> None:
        key = f"{S3_PREFIX}/{rel}"
        data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        data[0] ^= 0xFF
        client.put_object(Bucket=bucket, Key=key, Body=bytes(data))

    return Store(backend, stored, corrupt, blobs)


def hub_store(hub: HubDouble, repo_id: str) -> Store:
    backend = HuggingFaceStorage(repo_id, token=hub.token, endpoint=hub.endpoint)
    return Store(
        backend,
        lambda: set(hub.files(repo_id)) - HUB_FILES,
        lambda rel: hub.corrupt(repo_id, rel),
    )


@pytest.fixture(
    params=[
        "local",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("huggingface", marks=pytest.mark.hf),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """An empty backend of each kind (for the remote registry: the server's local storage)."""
    if _is_remote(request):
        if request.param != "local":
            pytest.skip("the test server (cmr serve) stores artifacts on local disk only")
        server: RegistryServer = request.getfixturevalue("remote_server_sqlite")
        return local_store(server.storage_dir)
    if request.param == "local":
        return local_store(tmp_path / "artifacts")
    if request.param == "s3":
        server: MotoServer = request.getfixturevalue("s3_server")
        return s3_store(server.endpoint_url, request.getfixturevalue("s3_bucket"))
    return hub_store(request.getfixturevalue("hub_server"), request.getfixturevalue("hub_repo"))


def _is_remote(request: pytest.FixtureRequest) -> bool:
    return request.node.callspec.params.get("db_url") == "remote"


def _registry(request: pytest.FixtureRequest, db_url: str, store: Store) -> Registry:
    if _is_remote(request):
        return InspectableRemoteRegistry(request.getfixturevalue("remote_server_sqlite"))
    return Registry.from_url(db_url, storage=store.backend)


@pytest.fixture
def reg(request: pytest.FixtureRequest, db_url: str, store: Store) -> Iterator[Registry]:
    """A registry on each database whose storage is ``store``'s backend (or a remote one)."""
    registry = _registry(request, db_url, store)
    yield registry
    registry.close()


LocalReg = tuple[Registry, Store]

_MID_UPLOAD = (
    "acts from the progress callback while bytes reach storage; through a server the "
    "client's progress covers the send, before the server claims the path and stores"
)
_SERVER_EVENTS = "the upload and download events are emitted in the server's process"
Event = tuple[str, dict[str, float], dict[str, object]]  # (name, measurements, metadata)


@pytest.fixture
def local_reg(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[LocalReg]:
    """A registry on each database with local storage only (for local-disk specifics)."""
    if _is_remote(request):
        server: RegistryServer = request.getfixturevalue("remote_server_sqlite")
        local = local_store(server.storage_dir)
    else:
        local = local_store(tmp_path / "artifacts")
    registry = _registry(request, db_url, local)
    yield registry, local
    registry.close()


@pytest.fixture
def events() -> Iterator[list[Event]]:
    """Every registry event emitted during the test: (name, measurements, metadata)."""
    seen: list[Event] = []
    handler_id = f"test-artifacts-{uuid.uuid4().hex}"
    telemetry.attach(handler_id, telemetry.EVENTS, lambda e, m, md: seen.append((e[1], m, md)))
    yield seen
    telemetry.detach(handler_id)


# --------------------------------------------------------------------------- helpers


def register(registry: Registry, **overrides: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "model_name": MODEL,
        "version": "1.0.0",
        "recipe": "sl_basic",
        "base_model": BASE,
        "training_config": {"lr": 1e-4, "run": uuid.uuid4().hex},
        "metrics": {"accuracy": 0.92},
    }
    fields.update(overrides)
    return registry.register(**fields)


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def artifact_rows(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ARTIFACTS)).scalar_one())


def claims(registry: Registry) -> list[tuple[str, str, str, int]]:
    """Every upload's claim on a path: (backend, path, host, pid)."""
    c = PENDING_UPLOADS.c
    with registry.engine.connect() as conn:
        rows = conn.execute(select(c.storage_backend, c.storage_path, c.host, c.pid))
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def leave_claim(
    registry: Registry,
    version: ModelVersion,
    path: str,
    *,
    host: str,
    pid: int,
    age: timedelta,
    expires_in: timedelta,
) -> None:
    """A claim as an unfinished upload would leave it, its lease ending in ``expires_in``."""
    at = datetime.now(UTC)
    with registry.engine.begin() as conn:
        conn.execute(
            insert(PENDING_UPLOADS).values(
                storage_backend="local",
                storage_path=path,
                version_id=version.id,
                host=host,
                pid=pid,
                started_at=at - age,
                token="left-behind",
                expires_at=at + expires_in,
            )
        )


def read_card(hub: HubDouble, repo_id: str) -> tuple[dict[str, Any], str]:
    """The README's metadata and body as stored on the Hub."""
    text = hub.object_path(repo_id, "README.md").read_text(encoding="utf-8")
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [0, 6 * MiB + 7], ids=["empty", "6MiB"])
def test_a_file_round_trips(reg: Registry, store: Store, tmp_path: Path, size: int) -> None:
    v = register(reg)
    src = write_file(tmp_path / "in" / "model.safetensors", size, seed=size)

    a = reg.upload_artifact(v, "checkpoint", src)

    remote = f"{LAYOUT}/checkpoint/model.safetensors"
    assert isinstance(a, Artifact)
    assert (a.model_version_id, a.type, a.storage_backend) == (
        v.id,
        ArtifactType.CHECKPOINT,
        store.backend.name,
    )
    assert (a.size_bytes, a.checksum, a.manifest) == (size, sha256_of(src), None)
    assert a.storage_path.endswith(remote)
    assert store.stored() == {remote}
    assert reg.get_version(v.id).artifacts == [a]

    dest = tmp_path / "out" / "copy.safetensors"
    assert reg.download_artifact(a, dest, parents=True) == dest
    assert dest.read_bytes() == src.read_bytes()
    into_dir = tmp_path / "out"
    assert reg.download_artifact(a.id, into_dir) == into_dir / "model.safetensors"
    assert (into_dir / "model.safetensors").read_bytes() == src.read_bytes()
    assert reg.verify_artifact(a) is True


def test_a_directory_round_trips_with_its_tree_and_manifest(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v = register(reg)
    files = make_tree(tmp_path / "ckpt")

    a = reg.upload_artifact(v, "checkpoint", tmp_path / "ckpt")

    base = f"{LAYOUT}/checkpoint/ckpt"
    assert a.storage_path.endswith(base + "/")
    assert store.stored() == {f"{base}/{rel}" for rel in [*files, MANIFEST_NAME]}
    assert a.size_bytes == sum(p.stat().st_size for p in files.values())
    expected = {(rel, p.stat().st_size, sha256_of(p)) for rel, p in files.items()}
    assert a.manifest is not None
    assert {(e["path"], e["size_bytes"], e["sha256"]) for e in a.manifest} == expected
    stored_manifest = tmp_path / "manifest.json"
    store.backend.download(a.storage_path + MANIFEST_NAME, stored_manifest)
    assert a.checksum == sha256_of(stored_manifest)
    listed = json.loads(stored_manifest.read_bytes())["files"]
    assert {(e["path"], e["size"], e["sha256"]) for e in listed} == expected
    assert reg.get_version(v.id).artifacts == [a]

    dest = tmp_path / "restored"
    assert reg.download_artifact(a, dest) == dest
    assert tree_of(dest) == tree_of(tmp_path / "ckpt")
    assert reg.verify_artifact(a) is True


def test_each_artifact_lists_on_its_version(reg: Registry, store: Store, tmp_path: Path) -> None:
    v = register(reg)
    other = register(reg, version="2.0.0")
    config = reg.upload_artifact(v, "config", write_file(tmp_path / "config.json", 100))
    ckpt = reg.upload_artifact(v, ArtifactType.CHECKPOINT, write_file(tmp_path / "m.bin", 2000))
    renamed = reg.upload_artifact(other, "gguf", tmp_path / "m.bin", name="m.Q4.gguf")

    assert reg.get_version(v.id).artifacts == [config, ckpt]
    assert reg.get_version(f"{MODEL}@2.0.0").artifacts == [renamed]
    assert store.stored() == {
        f"{LAYOUT}/config/config.json",
        f"{LAYOUT}/checkpoint/m.bin",
        f"{MODEL}/2.0.0/gguf/m.Q4.gguf",
    }


def test_module_functions_use_the_default_registry(registry: Registry, tmp_path: Path) -> None:
    v = register(registry)
    src = write_file(tmp_path / "a.bin", 5000)
    a = cmr.upload_artifact(v, "checkpoint", src)
    assert cmr.download_artifact(a, tmp_path / "b.bin") == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    assert cmr.verify_artifact(a) is True
    assert cmr.artifact_url(a).startswith("file://")
    cmr.delete_artifact(a)
    assert registry.get_version(v.id).artifacts == []
    with pytest.raises(NotFoundError) as info:
        cmr.download_artifact(a, tmp_path / "c.bin")
    assert (info.value.kind, info.value.ref) == ("artifact", a.id)
    assert not (tmp_path / "c.bin").exists()


def test_delete_artifact_removes_the_record_and_the_bytes(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v = register(reg)
    make_tree(tmp_path / "ckpt")
    folder = reg.upload_artifact(v, "checkpoint", tmp_path / "ckpt")
    single = reg.upload_artifact(v, "config", write_file(tmp_path / "config.json", 100))

    reg.delete_artifact(folder)

    assert store.stored() == {f"{LAYOUT}/config/config.json"}
    assert reg.get_version(v.id).artifacts == [single]
    reg.delete_artifact(single.id)
    assert store.stored() == set()
    assert artifact_rows(reg) == 0


@pytest.mark.s3
def test_one_version_on_two_backends(
    db_url: str, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    local = local_store(tmp_path / "artifacts")
    s3 = s3_store(s3_server.endpoint_url, s3_bucket)
    both = Registry.from_url(db_url, storage=local.backend, storages=[s3.backend])
    local_only = Registry.from_url(db_url, storage=local.backend)
    try:
        v = register(both)
        src = write_file(tmp_path / "model.bin", 3000)
        on_disk = both.upload_artifact(v, "checkpoint", src)
        on_s3 = both.upload_artifact(v, "gguf", src, storage="s3")

        assert (on_disk.storage_backend, on_s3.storage_backend) == ("local", "s3")
        assert on_s3.storage_path == f"s3://{s3_bucket}/{S3_PREFIX}/{LAYOUT}/gguf/model.bin"
        assert local.stored() == {f"{LAYOUT}/checkpoint/model.bin"}
        assert s3.stored() == {f"{LAYOUT}/gguf/model.bin"}
        assert both.get_version(v.id).artifacts == [on_disk, on_s3]
        for artifact in (on_disk, on_s3):
            dest = tmp_path / f"out-{artifact.id}.bin"
            both.download_artifact(artifact, dest)
            assert dest.read_bytes() == src.read_bytes()

        # Another registry on the same database that lacks the S3 backend.
        assert local_only.get_version(v.id).artifacts == [on_disk, on_s3]
        local_only.download_artifact(on_disk, tmp_path / "disk.bin")
        for call in (
            lambda: local_only.download_artifact(on_s3, tmp_path / "s3.bin"),
            lambda: local_only.verify_artifact(on_s3),
            lambda: local_only.artifact_url(on_s3),
            lambda: local_only.delete_artifact(on_s3),
            lambda: local_only.upload_artifact(v, "other", src, storage="s3"),
        ):
            with pytest.raises(ConfigurationError):
                call()
        assert not (tmp_path / "s3.bin").exists()
        assert local_only.get_version(v.id).artifacts == [on_disk, on_s3]
        assert s3.stored() == {f"{LAYOUT}/gguf/model.bin"}
    finally:
        both.close()
        local_only.close()


# --------------------------------------------------------------------------- by reference


@pytest.mark.s3
def test_artifacts_registered_by_reference_download_verified(
    db_url: str, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    s3 = s3_store(s3_server.endpoint_url, s3_bucket)
    registry = Registry.from_url(db_url, storage=s3.backend)
    try:
        src = write_file(tmp_path / "weights.bin", 4000)
        key = f"{S3_PREFIX}/elsewhere/run-7/weights.bin"
        s3_client(s3_server.endpoint_url).upload_file(str(src), s3_bucket, key)
        uri = f"s3://{s3_bucket}/{key}"
        v = register(
            registry,
            artifacts=[
                {
                    "type": "checkpoint",
                    "storage_backend": "s3",
                    "storage_path": uri,
                    "checksum": sha256_of(src),
                    "size_bytes": 4000,
                },
                {"type": "other", "storage_backend": "s3", "storage_path": uri},
            ],
        )
        checked, unchecked = v.artifacts
        assert (checked.storage_path, checked.checksum, checked.size_bytes) == (
            uri,
            sha256_of(src),
            4000,
        )

        registry.download_artifact(checked, tmp_path / "got.bin")
        assert (tmp_path / "got.bin").read_bytes() == src.read_bytes()
        assert registry.verify_artifact(checked) is True
        with pytest.raises(ValidationError) as info:
            registry.verify_artifact(unchecked)  # nothing recorded to verify against
        assert "artifact" in info.value.errors

        registry.delete_artifact(unchecked, keep_bytes=True)  # the bytes are someone else's
        assert s3.stored() == {"elsewhere/run-7/weights.bin"}
        assert registry.get_version(v.id).artifacts == [checked]
    finally:
        registry.close()


def test_a_reference_that_escapes_the_root_moves_nothing(
    local_reg: LocalReg, tmp_path: Path
) -> None:
    registry, _ = local_reg
    secret = write_file(tmp_path / "secret.bin", 50)
    v = register(
        registry,
        artifacts=[
            {
                "type": "checkpoint",
                "storage_backend": "local",
                "storage_path": "../secret.bin",
                "checksum": sha256_of(secret),
            }
        ],
    )
    [a] = v.artifacts
    dest = tmp_path / "out" / "got.bin"
    for call in (
        lambda: registry.download_artifact(a, dest),
        lambda: registry.verify_artifact(a),
        lambda: registry.artifact_url(a),
        lambda: registry.delete_artifact(a),
    ):
        with pytest.raises(ValidationError):
            call()
    assert not dest.exists()
    assert secret.exists()
    assert registry.get_version(v.id).artifacts == [a]


# --------------------------------------------------------------------------- faults


@pytest.mark.s3
def test_s3_stopping_mid_multipart_upload_records_nothing(
    db_url: str, s3_server: MotoServer, s3_bucket: str, tmp_path: Path, events: list[Event]
) -> None:
    # A second server over the session server's in-memory store: stopping it mid-upload
    # leaves the session server to show what was left behind.
    doomed = start_moto_server()
    s3 = s3_store(
        doomed.endpoint_url,
        s3_bucket,
        inspect_url=s3_server.endpoint_url,
        max_attempts=1,
        connect_timeout=2,
        read_timeout=5,
    )
    registry = Registry.from_url(db_url, storage=s3.backend)
    stopped = threading.Event()
    sent = 0

    def stop_midway(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > 6 * MiB and not stopped.is_set():
            stopped.set()
            doomed.stop()

    try:
        v = register(registry)
        src = write_file(tmp_path / "big.bin", 16 * MiB)
        with pytest.raises(StorageError) as info:
            registry.upload_artifact(v, "checkpoint", src, progress=stop_midway)

        assert info.value.backend == "s3"
        assert stopped.is_set()
        assert registry.get_version(v.id).artifacts == []
        assert artifact_rows(registry) == 0
        assert s3.stored() == set()
        assert claims(registry) == []  # the failed upload gave its path back
        [(_, measurements, metadata)] = [e for e in events if e[0] == "upload"]
        assert (metadata["outcome"], metadata["error"]) == ("error", "StorageError")
        assert measurements["count"] == 1
    finally:
        if not stopped.is_set():
            doomed.stop()
        registry.close()


@pytest.mark.in_process(_MID_UPLOAD)
@pytest.mark.parametrize("kind", ["file", "directory"])
def test_deleting_the_version_during_an_upload_is_refused_and_the_upload_recorded(
    db_url: str, reg: Registry, store: Store, tmp_path: Path, kind: str
) -> None:
    # Issue 14: deleting the version used to succeed here, and the upload's cleanup could
    # then delete a later upload's bytes; a live upload claim now refuses the deletion.
    other = Registry.from_url(db_url)  # another client of the same database
    v = register(reg)
    src = write_file(tmp_path / "model.bin", 2 * MiB) if kind == "file" else tmp_path / "ckpt"
    if kind == "directory":
        make_tree(src)
    refused: list[ValidationError] = []

    def delete_the_version(n: int) -> None:
        # Bytes are moving and no transaction is open: someone deletes the version now.
        if not refused:
            with pytest.raises(ValidationError) as info:
                other.delete_version(v.id, force=True)
            refused.append(info.value)

    try:
        artifact = reg.upload_artifact(v, "checkpoint", src, progress=delete_the_version)
    finally:
        other.close()

    assert [set(e.errors) for e in refused] == [{"version"}]
    assert [a.id for a in reg.get_version(v.id).artifacts] == [artifact.id]
    assert reg.verify_artifact(artifact)
    assert claims(reg) == []


def test_corrupted_bytes_fail_the_download_and_leave_the_destination(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v = register(reg)
    a = reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "model.bin", 3000))
    store.corrupt(f"{LAYOUT}/checkpoint/model.bin")
    dest = tmp_path / "out" / "model.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"the previous bytes")

    with pytest.raises(ChecksumMismatchError) as info:
        reg.download_artifact(a, dest, overwrite=True)

    assert (info.value.backend, info.value.expected) == (store.backend.name, a.checksum)
    assert info.value.actual != a.checksum
    assert dest.read_bytes() == b"the previous bytes"
    assert [p.name for p in dest.parent.iterdir()] == ["model.bin"]  # no temporary file left
    assert reg.verify_artifact(a) is False
    assert reg.get_version(v.id).artifacts == [a]


def test_a_corrupted_file_of_a_directory_leaves_the_destination(
    local_reg: LocalReg, tmp_path: Path
) -> None:
    # Directories go through the same file transfers on every backend (the storage
    # contract checks each one); here, the registry's side on local disk.
    registry, local = local_reg
    v = register(registry)
    make_tree(tmp_path / "ckpt")
    a = registry.upload_artifact(v, "checkpoint", tmp_path / "ckpt")
    local.corrupt(f"{LAYOUT}/checkpoint/ckpt/tokenizer/tokenizer.json")
    dest = tmp_path / "out" / "ckpt"
    write_file(dest / "old.bin", 10)
    before = tree_of(dest.parent)
    assert a.manifest is not None
    [entry] = [e for e in a.manifest if e["path"] == "tokenizer/tokenizer.json"]

    with pytest.raises(ChecksumMismatchError) as info:
        registry.download_artifact(a, dest)

    assert (info.value.backend, info.value.expected) == ("local", entry["sha256"])
    assert tree_of(dest.parent) == before
    assert [p.name for p in dest.parent.iterdir()] == ["ckpt"]  # no staging directory left
    assert registry.verify_artifact(a) is False


def test_names_that_would_leave_the_root_are_refused(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v = register(reg)
    src = write_file(tmp_path / "in" / "model.bin", 100)
    escape = f"escape-{uuid.uuid4().hex}.bin"
    names = [
        "..",
        f"../{escape}",
        f"../../../{escape}",
        f"/tmp/{escape}",
        f"ok/../../{escape}",
        f"..\\..\\{escape}",
        f"C:/{escape}",
        "a\x00b",
    ]
    for name in names:
        with pytest.raises(ValidationError) as info:
            reg.upload_artifact(v, "checkpoint", src, name=name)
        assert "name" in info.value.errors, name
    assert store.stored() == set()
    assert artifact_rows(reg) == 0
    assert not Path("/tmp", escape).exists()
    assert [p for p in tmp_path.rglob("*") if escape in p.name] == []


@pytest.mark.in_process("plants a symlink in a storage root of its own")
def test_a_symlink_out_of_the_storage_root_is_refused(local_reg: LocalReg, tmp_path: Path) -> None:
    registry, local = local_reg
    outside = tmp_path / "outside"
    outside.mkdir()
    assert isinstance(local.backend, LocalStorage)
    local.backend.base_path.mkdir(parents=True)
    os.symlink(outside, local.backend.base_path / "org")  # <root>/org -> elsewhere
    v = register(registry)
    with pytest.raises(ValidationError):
        registry.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 100))
    assert list(outside.iterdir()) == []
    assert artifact_rows(registry) == 0


def test_a_folder_with_a_symlink_to_a_folder_is_refused(
    local_reg: LocalReg, tmp_path: Path
) -> None:
    registry, local = local_reg
    make_tree(tmp_path / "ckpt")
    write_file(tmp_path / "private" / "key.pem", 10)
    os.symlink(tmp_path / "private", tmp_path / "ckpt" / "linked")
    v = register(registry)
    with pytest.raises(ValidationError):
        registry.upload_artifact(v, "checkpoint", tmp_path / "ckpt")
    assert local.stored() == set()
    assert artifact_rows(registry) == 0


def test_uploading_the_same_artifact_twice_keeps_the_first(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v = register(reg)
    first_src = write_file(tmp_path / "a" / "model.bin", 3000, seed=1)
    second_src = write_file(tmp_path / "b" / "model.bin", 2000, seed=2)
    first = reg.upload_artifact(v, "checkpoint", first_src)

    with pytest.raises(ValidationError) as info:
        reg.upload_artifact(v, "checkpoint", second_src)

    assert "already has an artifact" in info.value.errors["path"][0]
    assert reg.get_version(v.id).artifacts == [first]
    assert claims(reg) == []
    assert reg.verify_artifact(first) is True
    reg.download_artifact(first, tmp_path / "got.bin")
    assert (tmp_path / "got.bin").read_bytes() == first_src.read_bytes()
    # The same bytes under another type, or another name, are another artifact.
    assert reg.upload_artifact(v, "other", second_src).storage_backend == store.backend.name
    reg.upload_artifact(v, "checkpoint", second_src, name="model-b.bin")
    assert len(reg.get_version(v.id).artifacts) == 3


@pytest.mark.in_process(_MID_UPLOAD)
def test_an_upload_under_way_refuses_another_to_its_path(
    db_url: str, local_reg: LocalReg, tmp_path: Path
) -> None:
    registry, local = local_reg
    other = Registry.from_url(db_url, storage=local.backend)  # another client, same store
    v = register(registry)
    first_src = write_file(tmp_path / "a" / "model.bin", 3 * MiB, seed=1)
    second_src = write_file(tmp_path / "b" / "model.bin", 1000, seed=2)
    refused: list[ValidationError] = []

    def meanwhile(n: int) -> None:
        # The first upload is sending bytes: a second one to the same path must not start.
        if not refused:
            with pytest.raises(ValidationError) as info:
                other.upload_artifact(v, "checkpoint", second_src)
            refused.append(info.value)

    try:
        first = registry.upload_artifact(v, "checkpoint", first_src, progress=meanwhile)
    finally:
        other.close()

    [error] = refused
    message = error.errors["path"][0]
    assert "another upload to 'org/llama-sft/1.0.0/checkpoint/model.bin'" in message
    assert f"host {socket.gethostname()}, process {os.getpid()}" in message
    assert registry.get_version(v.id).artifacts == [first]
    assert first.checksum == sha256_of(first_src)
    assert registry.verify_artifact(first) is True
    assert local.stored() == {f"{LAYOUT}/checkpoint/model.bin"}
    assert claims(registry) == []


class PausingLocalStorage(LocalStorage):
    """Local storage that runs ``before_delete`` first: a window into a deletion under way."""

    def __init__(self, base_path: Path, before_delete: Callable[[], None]) -> None:
        super().__init__(base_path)
        self.before_delete = before_delete

    def delete(self, remote_path: str) -> None:
        if not remote_path.startswith(".cmr-blobs/"):  # the artifact's path, not its blob's
            self.before_delete()
        super().delete(remote_path)


def test_an_upload_cannot_start_while_the_path_is_being_deleted(
    db_url: str, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "model.bin", 1000, seed=1)
    refused: list[ValidationError] = []
    other = Registry.from_url(db_url, storage=LocalStorage(tmp_path / "store"))

    def upload_meanwhile() -> None:
        # The record is gone, the bytes not yet: the same path must not be written now.
        with pytest.raises(ValidationError) as info:
            other.upload_artifact(v, "checkpoint", src)
        refused.append(info.value)

    pausing = PausingLocalStorage(tmp_path / "store", upload_meanwhile)
    registry = Registry.from_url(db_url, storage=pausing)
    try:
        v = register(registry)
        artifact = registry.upload_artifact(v, "checkpoint", src)
        registry.delete_artifact(artifact)

        [error] = refused
        assert "another upload to 'org/llama-sft/1.0.0/checkpoint/model.bin'" in str(error)
        assert registry.get_version(v.id).artifacts == []
        assert not (tmp_path / "store" / LAYOUT / "checkpoint" / "model.bin").exists()
        assert claims(registry) == []
        # Once the deletion is over, the path is free again.
        again = other.upload_artifact(v, "checkpoint", src)
        assert registry.verify_artifact(again) is True
    finally:
        other.close()
        registry.close()


def _a_finished_process() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def test_a_claim_left_by_a_dead_process_is_taken_over_once_its_lease_ran_out(
    local_reg: LocalReg, tmp_path: Path
) -> None:
    registry, local = local_reg
    v = register(registry)
    path = f"{LAYOUT}/checkpoint/model.bin"
    dead = _a_finished_process()
    # Dead processes renew nothing: the lease ran out (issue 14: the pid is not trusted).
    leave_claim(
        registry,
        v,
        path,
        host=socket.gethostname(),
        pid=dead,
        age=timedelta(minutes=2),
        expires_in=-timedelta(seconds=1),
    )

    artifact = registry.upload_artifact(v, "checkpoint", write_file(tmp_path / "model.bin", 100))

    assert registry.verify_artifact(artifact) is True
    assert local.stored() == {path}
    assert claims(registry) == []


def test_a_claim_from_another_host_holds_until_its_lease_runs_out(
    local_reg: LocalReg, tmp_path: Path
) -> None:
    registry, local = local_reg
    v = register(registry)
    path = f"{LAYOUT}/checkpoint/model.bin"
    src = write_file(tmp_path / "model.bin", 100)
    leave_claim(
        registry,
        v,
        path,
        host="gpu-node-7",
        pid=4242,
        age=timedelta(hours=23),
        expires_in=timedelta(seconds=30),
    )

    with pytest.raises(ValidationError) as info:
        registry.upload_artifact(v, "checkpoint", src)

    message = info.value.errors["path"][0]
    assert "(host gpu-node-7, process 4242)" in message
    assert "when its lease runs out" in message
    assert claims(registry) == [("local", path, "gpu-node-7", 4242)]  # untouched
    assert registry.get_version(v.id).artifacts == []
    assert local.stored() == set()

    with registry.engine.begin() as conn:  # the same claim, its lease run out
        conn.execute(
            PENDING_UPLOADS.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    artifact = registry.upload_artifact(v, "checkpoint", src)
    assert registry.verify_artifact(artifact) is True
    assert claims(registry) == []


def test_bad_arguments_are_refused_before_any_transfer(local_reg: LocalReg, tmp_path: Path) -> None:
    registry, local = local_reg
    v = register(registry)
    src = write_file(tmp_path / "a.bin", 10)
    with pytest.raises(ValidationError) as info:
        registry.upload_artifact(v, "weights", src)
    assert "type" in info.value.errors
    with pytest.raises(ValidationError) as info:
        registry.upload_artifact(v, "checkpoint", tmp_path / "missing.bin")
    assert "path" in info.value.errors
    with pytest.raises(NotFoundError):
        registry.upload_artifact(f"{MODEL}@9.9.9", "checkpoint", src)
    with pytest.raises(ConfigurationError):
        registry.upload_artifact(v, "checkpoint", src, storage="gcs")
    with pytest.raises(ValidationError) as info:
        registry.download_artifact("not an artifact", tmp_path / "x.bin")  # type: ignore[arg-type]
    assert "artifact" in info.value.errors
    assert local.stored() == set()
    assert artifact_rows(registry) == 0


# --------------------------------------------------------------------------- telemetry


@pytest.mark.in_process(_SERVER_EVENTS)
def test_operations_emit_telemetry(
    reg: Registry, store: Store, tmp_path: Path, events: list[Event]
) -> None:
    v = register(reg)
    reg.promote(v, "staging")
    a = reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 12345))
    reg.download_artifact(a, tmp_path / "out.bin")

    assert [name for name, _, _ in events] == ["register", "promote", "upload", "download"]
    for _, measurements, metadata in events:
        assert measurements["count"] == 1
        assert isinstance(measurements["duration_ns"], int)
        assert measurements["duration_ns"] > 0
        assert (metadata["model"], metadata["version"]) == (MODEL, "1.0.0")
    assert [md["outcome"] for _, _, md in events] == ["ok", "promoted", "ok", "ok"]
    by_name = {name: (m, md) for name, m, md in events}
    assert (by_name["promote"][1]["from_stage"], by_name["promote"][1]["to_stage"]) == (
        "experiment",
        "staging",
    )
    for name in ("upload", "download"):
        measurements, metadata = by_name[name]
        assert measurements["size_bytes"] == 12345
        assert metadata["backend"] == store.backend.name


@pytest.mark.in_process(_SERVER_EVENTS)
def test_a_failed_download_emits_an_error_event(
    local_reg: LocalReg, tmp_path: Path, events: list[Event]
) -> None:
    registry, local = local_reg
    v = register(registry)
    a = registry.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 100))
    local.corrupt(f"{LAYOUT}/checkpoint/m.bin")
    with pytest.raises(ChecksumMismatchError):
        registry.download_artifact(a, tmp_path / "out.bin")
    (_, measurements, metadata) = events[-1]
    assert (events[-1][0], metadata["outcome"], metadata["error"]) == (
        "download",
        "error",
        "ChecksumMismatchError",
    )
    assert (metadata["model"], metadata["backend"], measurements["count"]) == (MODEL, "local", 1)


# --------------------------------------------------------------------------- the Hub's model card

EXISTING_CARD = """---
license: apache-2.0
tags:
- sft
owner_notes: keep me
---

# Llama SFT

Written by a person; the registry must not touch this.
"""


@pytest.fixture
def hub_reg(db_url: str, hub_server: HubDouble, hub_repo: str) -> Iterator[Registry]:
    registry = Registry.from_url(db_url, storage=hub_store(hub_server, hub_repo).backend)
    yield registry
    registry.close()


@pytest.mark.hf
def test_an_upload_to_the_hub_writes_the_model_card(
    hub_reg: Registry, hub_server: HubDouble, hub_repo: str, tmp_path: Path
) -> None:
    v = register(hub_reg, metrics={"accuracy": 0.92, "loss": 1.5})
    hub_reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 100))

    meta, body = read_card(hub_server, hub_repo)
    assert meta["base_model"] == BASE
    assert "base_model_relation" not in meta  # a root version: no parent, no relation
    assert meta["metrics"] == ["accuracy", "loss"]
    assert meta[CARD_KEY][f"{MODEL}@1.0.0"] == {
        "model_name": MODEL,
        "version": "1.0.0",
        "recipe": "sl_basic",
        "config_hash": v.config_hash,
        "metrics": {"accuracy": 0.92, "loss": 1.5},
        "base_models": [BASE],
    }
    assert f"# {MODEL}" in body


@pytest.mark.hf
def test_a_fine_tune_names_its_base_and_relation(
    hub_reg: Registry, hub_server: HubDouble, hub_repo: str, tmp_path: Path
) -> None:
    parent = register(hub_reg, version="0.9.0")
    child = register(hub_reg, parents=[parent], lineage_type="fine_tune")
    hub_reg.upload_artifact(child, "adapter", write_file(tmp_path / "adapter.bin", 100))

    meta, _ = read_card(hub_server, hub_repo)
    assert (meta["base_model"], meta["base_model_relation"]) == (BASE, "finetune")
    assert meta[CARD_KEY][f"{MODEL}@1.0.0"]["relationship"] == "fine_tuned_from"


@pytest.mark.hf
def test_a_merge_lists_its_bases_on_the_card(
    hub_reg: Registry, hub_server: HubDouble, hub_repo: str, tmp_path: Path
) -> None:
    a = register(hub_reg, model_name="org/math", version="1", base_model="org/base-a")
    b = register(hub_reg, model_name="org/code", version="1", base_model="org/base-b")
    merged = register(hub_reg, base_model="org/base-a", parents=[a, b], lineage_type="merge")
    hub_reg.upload_artifact(merged, "merged", write_file(tmp_path / "merged.bin", 100))

    meta, _ = read_card(hub_server, hub_repo)
    assert isinstance(meta["base_model"], list)
    assert sorted(meta["base_model"]) == ["org/base-a", "org/base-b"]
    assert meta["base_model_relation"] == "merge"
    ours = meta[CARD_KEY][f"{MODEL}@1.0.0"]
    assert (ours["relationship"], ours["config_hash"]) == ("merged_from", merged.config_hash)


@pytest.mark.hf
def test_an_existing_card_keeps_its_other_content(
    hub_reg: Registry, hub_server: HubDouble, hub_repo: str, tmp_path: Path
) -> None:
    hub_server.create_repo("model", *hub_repo.split("/"))
    hub_server.put_file(hub_repo, "README.md", EXISTING_CARD.encode())
    v = register(hub_reg)
    hub_reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 100))

    meta, body = read_card(hub_server, hub_repo)
    assert body == EXISTING_CARD.split("---\n", 2)[2]
    assert (meta["license"], meta["tags"], meta["owner_notes"]) == (
        "apache-2.0",
        ["sft"],
        "keep me",
    )
    assert meta["base_model"] == BASE
    assert set(meta[CARD_KEY]) == {f"{MODEL}@1.0.0"}


@pytest.mark.hf
def test_a_card_that_cannot_be_merged_does_not_fail_the_upload(
    hub_reg: Registry,
    hub_server: HubDouble,
    hub_repo: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = "---\nlicense: [unclosed\n---\n# hand-written\n"
    hub_server.create_repo("model", *hub_repo.split("/"))
    hub_server.put_file(hub_repo, "README.md", broken.encode())
    v = register(hub_reg)
    with caplog.at_level(logging.WARNING, logger="crucible_model_registry"):
        a = hub_reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "m.bin", 100))

    assert hub_reg.get_version(v.id).artifacts == [a]
    assert hub_reg.verify_artifact(a) is True
    assert hub_server.object_path(hub_repo, "README.md").read_text() == broken
    assert any(r.levelno == logging.WARNING for r in caplog.records)


# --------------------------------------------------------------------------- who may delete bytes


def by_reference(
    store: Store, storage_path: str, checksum: str | None, kind: str
) -> dict[str, Any]:
    return {
        "type": kind,
        "storage_backend": store.backend.name,
        "storage_path": storage_path,
        "checksum": checksum,
    }


def test_bytes_another_record_references_are_never_deleted(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    # Issue 14, item 4: v2 registered by reference to v1's upload (and to a file inside
    # v1's folder); deleting either side must not take the other's bytes.
    v1 = register(reg)
    own = reg.upload_artifact(v1, "checkpoint", write_file(tmp_path / "model.bin", 3000))
    files = make_tree(tmp_path / "tok")
    folder = reg.upload_artifact(v1, "tokenizer", tmp_path / "tok")
    v2 = register(
        reg,
        version="2.0.0",
        artifacts=[
            by_reference(store, own.storage_path, own.checksum, "checkpoint"),
            by_reference(
                store,
                folder.storage_path + "config.json",
                sha256_of(files["config.json"]),
                "config",
            ),
        ],
    )
    ref_own, ref_inner = v2.artifacts
    before = store.stored()

    deleted = reg.delete_artifact(own)
    assert store.stored() == before
    assert (deleted.bytes_deleted, deleted.reason, deleted.shared_with) == (
        False,
        "shared",
        [ref_own.id],
    )
    deleted = reg.delete_artifact(folder)
    assert (deleted.bytes_deleted, deleted.reason, deleted.shared_with) == (
        False,
        "shared",
        [ref_inner.id],
    )
    assert store.stored() == before
    reg.download_artifact(ref_own, tmp_path / "got.bin")
    reg.download_artifact(ref_inner, tmp_path / "got.json")
    assert reg.verify_artifact(ref_own)
    assert reg.verify_artifact(ref_inner)

    # Deleting a reference removes the record only, whoever else uses the bytes.
    deleted = reg.delete_artifact(ref_own)
    assert (deleted.bytes_deleted, deleted.reason) == (False, "reference")
    assert store.stored() == before
    assert reg.get_version(v2.id).artifacts == [ref_inner]


def test_deleting_an_artifact_nobody_shares_deletes_its_bytes(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v = register(reg)
    a = reg.upload_artifact(v, "checkpoint", write_file(tmp_path / "model.bin", 3000))
    other = register(reg, version="2.0.0")
    b = reg.upload_artifact(other, "checkpoint", tmp_path / "model.bin")  # same name, own path
    deleted = reg.delete_artifact(a)
    assert (deleted.artifact, deleted.bytes_deleted, deleted.reason) == (a, True, None)
    assert store.stored() == {f"{MODEL}/2.0.0/checkpoint/model.bin"}
    assert reg.get_version(other.id).artifacts == [b]


def test_collect_garbage_removes_exactly_the_orphans(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    v1 = register(reg)
    config = reg.upload_artifact(v1, "config", write_file(tmp_path / "config.json", 100))
    make_tree(tmp_path / "ckpt")
    folder = reg.upload_artifact(v1, "checkpoint", tmp_path / "ckpt")
    v2 = register(reg, version="2.0.0")
    reg.upload_artifact(v2, "checkpoint", write_file(tmp_path / "model.bin", 2000))
    tok = make_tree(tmp_path / "tok")
    reg.upload_artifact(v2, "tokenizer", tmp_path / "tok")
    v3 = register(reg, version="3.0.0")
    shared = reg.upload_artifact(v3, "gguf", write_file(tmp_path / "m.gguf", 500))
    v4 = register(
        reg,
        version="4.0.0",
        artifacts=[by_reference(store, shared.storage_path, shared.checksum, "gguf")],
    )
    reg.delete_version(v2.id)  # its bytes are orphans now
    reg.delete_version(v3.id)  # its bytes are still v4's
    # Bytes the registry did not write: another tool's, and an unknown model's.
    foreign = write_file(tmp_path / "foreign.bin", 10)
    store.backend.upload(foreign, "other-tool/data.bin")
    store.backend.upload(foreign, "ghost/1/checkpoint/x.bin")
    before, blobs_before = store.stored(), store.blobs()
    orphans = {f"{MODEL}/2.0.0/checkpoint/model.bin"} | {
        f"{MODEL}/2.0.0/tokenizer/tok/{rel}" for rel in [*tok, MANIFEST_NAME]
    }
    # Blobs no remaining upload references (v2's, and v3's: v4 names v3's path, not its blob).
    referenced = {config.checksum, *(e["sha256"] for e in folder.manifest or [])}
    orphans |= {b for b in blobs_before if b.rsplit("/", 1)[-1] not in referenced}

    dry = reg.collect_garbage(dry_run=True)

    assert dry.dry_run
    assert {(i.backend, i.kind, i.path) for i in dry.items} == {
        (store.backend.name, "orphan", p) for p in orphans
    }
    assert (store.stored(), store.blobs()) == (before, blobs_before)

    report = reg.collect_garbage()

    assert not report.dry_run
    assert {i.path for i in report.items} == orphans
    assert (report.errors, report.skipped_backends) == ([], [])
    assert store.stored() | store.blobs() == (before | blobs_before) - orphans
    assert reg.collect_garbage().items == []
    reg.download_artifact(folder, tmp_path / "out")
    reg.download_artifact(config, tmp_path / "config-out.json")
    reg.download_artifact(v4.artifacts[0], tmp_path / "m-out.gguf")


def _kill_mid_upload(db_url: str, storage: str, src: Path, version_id: int) -> None:
    """Upload ``src`` in another process that SIGKILLs itself half-way (``kill -9``)."""
    script = f"""
import os, signal, sys
from crucible_model_registry import Registry
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.s3 import S3Storage
registry = Registry.from_url({db_url!r}, storage={storage})
sent = 0
def die(n):
    global sent
    sent += n
    if sent > 6 * 2**20:
        os.kill(os.getpid(), signal.SIGKILL)
registry.upload_artifact({version_id}, "checkpoint", sys.argv[1], progress=die)
"""
    done = subprocess.run([sys.executable, "-c", script, str(src)], timeout=120, check=False)
    assert done.returncode == -9


def test_gc_removes_what_a_killed_upload_left_on_local_disk(
    db_url: str, local_reg: LocalReg, tmp_path: Path
) -> None:
    # Issue 14, item 11: kill -9 during an upload leaves a .cmr-tmp in storage forever.
    registry, local = local_reg
    v = register(registry)
    kept = registry.upload_artifact(v, "config", write_file(tmp_path / "c.json", 10))
    src = write_file(tmp_path / "big.bin", 12 * MiB)
    storage = f"LocalStorage({str(local.backend.base_path)!r})"
    _kill_mid_upload(db_url, storage, src, v.id)
    [leftover] = [p for p in local.stored() if p.endswith(".cmr-tmp")]
    assert leftover.startswith(f"{LAYOUT}/checkpoint/.big.bin.")
    assert registry.collect_garbage(older_than=timedelta(0)).items == []  # its lease holds it

    expire_claims(registry)  # the dead process's lease runs out
    assert registry.collect_garbage(older_than=timedelta(hours=1)).items == []  # too young
    report = registry.collect_garbage(older_than=timedelta(0))

    assert [(i.kind, i.path) for i in report.items] == [("temporary", leftover)]
    assert local.stored() == {f"{LAYOUT}/config/c.json"}
    assert registry.get_version(v.id).artifacts == [kept]
    # The dead process's claim no longer holds the path: the upload can be done again.
    registry.upload_artifact(v, "checkpoint", src)


@pytest.mark.s3
def test_gc_aborts_the_multipart_upload_of_a_killed_client(
    db_url: str, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    s3 = s3_store(s3_server.endpoint_url, s3_bucket)
    registry = Registry.from_url(db_url, storage=s3.backend)
    client = s3_client(s3_server.endpoint_url)
    try:
        v = register(registry)
        storage = (
            f"S3Storage({s3_bucket!r}, prefix={S3_PREFIX!r}, region={REGION!r}, "
            f"endpoint_url={s3_server.endpoint_url!r}, access_key_id={ACCESS_KEY_ID!r}, "
            f"secret_access_key={SECRET_ACCESS_KEY!r}, multipart_threshold=5 * 2**20, "
            "multipart_chunksize=5 * 2**20, max_concurrency=1)"
        )
        _kill_mid_upload(db_url, storage, write_file(tmp_path / "big.bin", 16 * MiB), v.id)
        [upload] = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert upload["Key"] == f"{S3_PREFIX}/{LAYOUT}/checkpoint/big.bin"
        assert registry.collect_garbage(older_than=timedelta(0)).items == []  # leased still
        expire_claims(registry)

        # moto reports every multipart upload as initiated in 2010, so the age threshold
        # is shown on local disk (above), not here.
        report = registry.collect_garbage(older_than=timedelta(hours=1))

        assert [(i.kind, i.path) for i in report.items] == [
            ("incomplete_upload", f"{LAYOUT}/checkpoint/big.bin")
        ]
        assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
        assert s3.stored() == set()
    finally:
        registry.close()


def test_gc_never_removes_what_a_live_upload_claims(local_reg: LocalReg, tmp_path: Path) -> None:
    registry, local = local_reg
    v = register(registry)
    # An upload under way in this process: its claim, its finished file, its temporary.
    leave_claim(
        registry,
        v,
        f"{LAYOUT}/checkpoint/ckpt",
        host=socket.gethostname(),
        pid=os.getpid(),
        age=timedelta(hours=2),
        expires_in=timedelta(seconds=50),
    )
    local.backend.upload(write_file(tmp_path / "a.bin", 10), f"{LAYOUT}/checkpoint/ckpt/a.bin")
    temporary = local.backend.base_path / LAYOUT / "checkpoint" / "ckpt" / ".b.bin.x1.cmr-tmp"
    temporary.write_bytes(b"half")
    old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    os.utime(temporary, (old, old))
    before = local.stored()

    assert registry.collect_garbage(older_than=timedelta(0)).items == []
    assert local.stored() == before

    expire_claims(registry)  # its owner stopped renewing the lease: dead or stalled
    report = registry.collect_garbage(older_than=timedelta(0))
    assert {(i.kind, i.path) for i in report.items} == {
        ("orphan", f"{LAYOUT}/checkpoint/ckpt/a.bin"),
        ("temporary", f"{LAYOUT}/checkpoint/ckpt/.b.bin.x1.cmr-tmp"),
    }
    assert local.stored() == set()


def expire_claims(registry: Registry) -> None:
    """Every claim's lease runs out now, as when its owner died without giving it back."""
    with registry.engine.begin() as conn:
        conn.execute(
            update(PENDING_UPLOADS).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_folder_url_is_its_manifest_and_file_picks_one(
    reg: Registry, store: Store, tmp_path: Path
) -> None:
    # Issue 13.3: artifact_url failed on every folder artifact.
    v = register(reg)
    make_tree(tmp_path / "ckpt")
    folder = reg.upload_artifact(v, "checkpoint", tmp_path / "ckpt")
    single = reg.upload_artifact(v, "config", write_file(tmp_path / "c.json", 10))
    base = f"{LAYOUT}/checkpoint/ckpt"

    manifest_url = reg.artifact_url(folder)
    file_url = reg.artifact_url(folder, file="tokenizer/tokenizer.json")

    assert urlsplit(manifest_url).path.endswith(f"{base}/{MANIFEST_NAME}")
    assert urlsplit(file_url).path.endswith(f"{base}/tokenizer/tokenizer.json")
    if store.backend.name != "huggingface":  # the Hub double's repository is private
        with urllib.request.urlopen(manifest_url) as response:
            listed = json.loads(response.read())["files"]
        assert {e["path"] for e in listed} == {e["path"] for e in folder.manifest or []}
    for bad in (
        lambda: reg.artifact_url(folder, file="not/there.json"),
        lambda: reg.artifact_url(folder, file="../escape"),
        lambda: reg.artifact_url(single, file="c.json"),
    ):
        with pytest.raises(ValidationError) as info:
            bad()
        assert list(info.value.errors) == ["file"]
