"""LocalStorage: the shared contract plus symlink confinement and atomic replacement."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tests.storage.contract import StorageContract, make_tree, write_file

from crucible_model_registry.errors import StorageError, ValidationError
from crucible_model_registry.storage._streaming import AtomicFile
from crucible_model_registry.storage.base import StorageBackend
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.manifest import (
    download_artifact_files,
    upload_artifact_files,
)


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def artifact_storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "store")

    def stored_files(self, backend: StorageBackend) -> set[str]:
        assert isinstance(backend, LocalStorage)
        return _tree(backend.base_path) if backend.base_path.exists() else set()

    def corrupt(self, backend: StorageBackend, remote_path: str) -> None:
        assert isinstance(backend, LocalStorage)
        target = backend.base_path / remote_path
        data = bytearray(target.read_bytes() or b"\0")
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


def test_storage_path_is_relative_to_the_root(store: LocalStorage, tmp_path: Path) -> None:
    src = write_file(tmp_path / "a.bin", 10)
    assert store.upload(src, "m/1/other/a.bin").storage_path == "m/1/other/a.bin"
    assert store.url("m/1/other/a.bin") == (store.base_path / "m/1/other/a.bin").as_uri()


def test_a_symlinked_directory_inside_the_root_cannot_carry_writes_outside(
    store: LocalStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.base_path.mkdir(parents=True)
    os.symlink(outside, store.base_path / "escape")
    src = write_file(tmp_path / "a.bin", 10)

    with pytest.raises(ValidationError):
        store.upload(src, "escape/a.bin")
    with pytest.raises(ValidationError):
        store.upload(src, "escape/deeper/a.bin")
    assert list(outside.iterdir()) == []


def test_a_symlinked_file_inside_the_root_cannot_be_read_or_deleted(
    store: LocalStorage, tmp_path: Path
) -> None:
    secret = write_file(tmp_path / "secret.txt", 10)
    store.base_path.mkdir(parents=True)
    os.symlink(secret, store.base_path / "leak.bin")

    with pytest.raises(ValidationError):
        store.download("leak.bin", tmp_path / "got.bin")
    with pytest.raises(ValidationError):
        store.delete("leak.bin")
    assert secret.exists()
    assert not (tmp_path / "got.bin").exists()


def test_a_symlinked_root_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    store = LocalStorage(tmp_path / "link")
    store.upload(write_file(tmp_path / "a.bin", 10), "m/1/other/a.bin")
    assert (real / "m/1/other/a.bin").is_file()


def test_a_manifest_cannot_send_files_outside_the_destination(
    store: LocalStorage, tmp_path: Path
) -> None:
    manifest = (
        b'{"files":[{"path":"../escaped.bin","sha256":"' + b"0" * 64 + b'","size":1}],'
        b'"format":"crucible-model-registry/manifest","version":1}\n'
    )
    (store.base_path / "m/1/other/d").mkdir(parents=True)
    (store.base_path / "m/1/other/d/cmr-manifest.json").write_bytes(manifest)
    (store.base_path / "m/1/other/escaped.bin").write_bytes(b"x")

    with pytest.raises(ValidationError):
        download_artifact_files(store, "m/1/other/d/", tmp_path / "out" / "d")
    assert not (tmp_path / "out" / "escaped.bin").exists()
    assert not (tmp_path / "out" / "d").exists()


def test_a_failing_upload_keeps_the_previous_bytes_and_leaves_no_temporary_file(
    store: LocalStorage, tmp_path: Path
) -> None:
    store.upload(write_file(tmp_path / "old.bin", 100, seed=1), "m/1/other/a.bin")
    before = (store.base_path / "m/1/other/a.bin").read_bytes()

    def fail(_: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        store.upload(
            write_file(tmp_path / "new.bin", 3 << 20, seed=2), "m/1/other/a.bin", progress=fail
        )
    assert (store.base_path / "m/1/other/a.bin").read_bytes() == before
    assert _tree(store.base_path) == {"m/1/other/a.bin"}


def test_delete_prunes_empty_directories_but_not_the_root(
    store: LocalStorage, tmp_path: Path
) -> None:
    store.upload(write_file(tmp_path / "a.bin", 1), "m/1/other/a.bin")
    store.delete("m/1/other/a.bin")
    assert store.base_path.is_dir()
    assert list(store.base_path.iterdir()) == []


def test_an_unwritable_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = write_file(tmp_path / "not-a-dir", 1)
    store = LocalStorage(blocker)
    with pytest.raises(StorageError) as info:
        store.upload(write_file(tmp_path / "a.bin", 1), "m/1/other/a.bin")
    assert info.value.backend == "local"


def test_early_background_flushes_keep_the_bytes(
    store: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AtomicFile, "FLUSH_EVERY", 1 << 20)
    src = write_file(tmp_path / "a.bin", (5 << 20) + 3)
    result = store.upload(src, "m/1/other/a.bin")
    store.download(result.storage_path, tmp_path / "b.bin", expected_sha256=result.sha256)
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_stored_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    # Issue 13.4: stored artifacts were 0600 whatever the umask; teammates could not read them.
    store = LocalStorage(tmp_path / f"store-{umask:o}")
    make_tree(tmp_path / "ckpt")
    old = os.umask(umask)
    try:
        upload_artifact_files(store, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        store.upload(tmp_path / "ckpt" / "config.json", "m/1/config/c.json")
    finally:
        os.umask(old)
    for path in store.base_path.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o777 if path.is_dir() else 0o666) & ~umask, path


def test_gc_lists_files_and_temporaries_but_not_symlinks(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    store.upload(write_file(tmp_path / "a.bin", 3), "m/1/other/a.bin")
    leftover = store.base_path / "m" / "1" / "other" / ".b.bin.x1y2.cmr-tmp"
    leftover.write_bytes(b"half")
    os.symlink(tmp_path / "a.bin", store.base_path / "m" / "1" / "other" / "link.bin")
    listed = {(item.path, item.kind, item.size_bytes) for item in store.list_stored()}
    assert listed == {
        ("m/1/other/a.bin", "file", 3),
        ("m/1/other/.b.bin.x1y2.cmr-tmp", "temporary", 4),
    }
    assert store.relative_path("m/1/other/") == "m/1/other/"
    with pytest.raises(ValidationError):
        store.relative_path("../x")
