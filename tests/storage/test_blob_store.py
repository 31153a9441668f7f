"""The blob operations (``StoresBlobs``) and in-place hashing (``HashesStoredFiles``) of the
local and S3 backends, against the real filesystem and the moto server."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.servers.s3 import MotoServer
from tests.storage.contract import MiB, sha256_of, write_file
from tests.storage.test_s3 import make_storage

from crucible_model_registry.errors import StorageError, ValidationError
from crucible_model_registry.storage.base import (
    HashesStoredFiles,
    StoresBlobs,
    blob_path,
    blob_sha256,
)
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.manifest import upload_directory, verify_artifact_files
from crucible_model_registry.storage.s3 import S3Storage

Backend = LocalStorage | S3Storage


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    server: MotoServer = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    return make_storage(server.endpoint_url, bucket, content_addressed=True)


def test_both_backends_conform(backend: Backend) -> None:
    assert isinstance(backend, StoresBlobs)
    assert isinstance(backend, HashesStoredFiles)
    assert backend.content_addressed


def test_blob_paths_name_their_hash_and_nothing_else() -> None:
    sha = "ab" + "0" * 62
    assert blob_path(sha) == f".cmr-blobs/sha256/ab/{sha}"
    assert blob_sha256(blob_path(sha)) == sha
    assert blob_sha256(f".cmr-blobs/sha256/cd/{sha}") is None  # wrong fan-out directory
    assert blob_sha256("org/m/1/checkpoint/" + sha) is None
    with pytest.raises(ValidationError):
        blob_path("AB" + "0" * 62)


def test_linking_an_absent_blob_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    assert backend.link_blob("0" * 64, "m/1/checkpoint/x.bin", size_bytes=1) is None
    assert not backend.exists("m/1/checkpoint/x.bin")


def test_an_adopted_blob_makes_other_paths_without_sending(
    backend: Backend, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "x.bin", 6 * MiB + 1, seed=3)
    sha = sha256_of(src)
    backend.upload(src, "m/1/checkpoint/x.bin")

    backend.adopt_blob("m/1/checkpoint/x.bin", sha)
    backend.adopt_blob("m/1/checkpoint/x.bin", sha)  # idempotent
    linked = backend.link_blob(sha, "m/2/checkpoint/y.bin", size_bytes=src.stat().st_size)

    assert linked is not None
    assert (linked.sha256, linked.size_bytes) == (sha, src.stat().st_size)
    assert linked.storage_path.endswith("m/2/checkpoint/y.bin")
    assert backend.hash_stored("m/2/checkpoint/y.bin").sha256 == sha
    assert backend.link_blob(sha, "m/3/checkpoint/z.bin", size_bytes=1) is None  # wrong size
    backend.delete_blob(sha)
    assert not backend.exists(blob_path(sha))
    # The artifacts' own paths keep their bytes without the blob.
    assert backend.hash_stored("m/1/checkpoint/x.bin").sha256 == sha
    assert backend.hash_stored("m/2/checkpoint/y.bin").sha256 == sha
    backend.delete_blob(sha)  # absent: not an error


def test_a_second_copy_of_stored_bytes_becomes_a_link(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    src = write_file(tmp_path / "x.bin", 1000, seed=4)
    store.upload(src, "m/1/checkpoint/x.bin")
    store.upload(src, "m/2/checkpoint/x.bin")  # an identical upload that raced the first
    sha = sha256_of(src)

    store.adopt_blob("m/1/checkpoint/x.bin", sha)
    store.adopt_blob("m/2/checkpoint/x.bin", sha)

    inodes = {
        (store.base_path / p).stat().st_ino
        for p in ("m/1/checkpoint/x.bin", "m/2/checkpoint/x.bin", blob_path(sha))
    }
    assert len(inodes) == 1


def test_adopting_an_absent_file_fails(backend: Backend) -> None:
    with pytest.raises(StorageError):
        backend.adopt_blob("m/1/checkpoint/none.bin", "0" * 64)


def test_hashing_in_place_matches_the_upload_and_writes_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "x.bin", 9 * MiB + 5, seed=5)
    stored = backend.upload(src, "m/1/checkpoint/x.bin")
    seen: list[int] = []

    hashed = backend.hash_stored(stored.storage_path, progress=seen.append)

    assert (hashed.sha256, hashed.size_bytes) == (stored.sha256, stored.size_bytes)
    assert sum(seen) == stored.size_bytes
    with pytest.raises(StorageError):
        backend.hash_stored("m/1/checkpoint/absent.bin")


def test_verify_in_place_finds_a_corrupt_file_of_a_folder(backend: Backend, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_file(tree / "a.bin", 1000, seed=1)
    write_file(tree / "sub" / "b.bin", 2000, seed=2)
    result = upload_directory(backend, tree, "m/1/checkpoint/tree")
    assert verify_artifact_files(backend, result.storage_path, result.sha256) is True

    backend.upload(write_file(tmp_path / "evil.bin", 2000, seed=9), "m/1/checkpoint/tree/sub/b.bin")

    assert verify_artifact_files(backend, result.storage_path, result.sha256) is False
    assert verify_artifact_files(backend, result.storage_path, "0" * 64) is False
