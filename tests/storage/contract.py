"""The storage contract every backend passes: a test class over an ``artifact_storage`` fixture.

A backend's test module subclasses :class:`StorageContract`, provides the fixture
``artifact_storage`` (a fresh, empty backend) and implements two hooks that reach past the
backend to the store itself:

- :meth:`StorageContract.stored_files`: every file stored, as remote paths relative to the
  backend's root (``llama/1/checkpoint/model.bin``);
- :meth:`StorageContract.corrupt`: overwrite the bytes stored at a remote path.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from crucible_model_registry.errors import ChecksumMismatchError, StorageError, ValidationError
from crucible_model_registry.storage.base import (
    StorageBackend,
    TransferResult,
    artifact_remote_path,
)
from crucible_model_registry.storage.manifest import (
    MANIFEST_NAME,
    DirectoryTransferResult,
    delete_artifact_files,
    download_artifact_files,
    upload_artifact_files,
    verify_artifact_files,
)

MiB = 1 << 20

ESCAPING_PATHS = [
    "../outside.bin",
    "a/../../outside.bin",
    "/etc/outside.bin",
    "a//b.bin",
    "./a.bin",
    "a/./b.bin",
    "a\\..\\..\\outside.bin",
    "C:/outside.bin",
    "",
    "a/b/",
    "a\x00b",
]


def write_file(path: Path, size: int, *, seed: int = 0) -> Path:
    """A file of ``size`` pseudo-random bytes (incompressible, different per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(f"{seed}".encode()).digest() * 2048  # 64 KiB
    with path.open("wb") as f:
        left = size
        counter = 0
        while left > 0:
            chunk = hashlib.sha256(block + counter.to_bytes(8, "big")).digest() + block
            f.write(chunk[:left])
            left -= len(chunk[:left])
            counter += 1
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_tree(root: Path) -> dict[str, Path]:
    """A nested directory like a sharded Hugging Face checkpoint; relative path -> file."""
    return {
        "config.json": write_file(root / "config.json", 300, seed=1),
        "model-00001-of-00002.safetensors": write_file(
            root / "model-00001-of-00002.safetensors", MiB + 17, seed=2
        ),
        "model-00002-of-00002.safetensors": write_file(
            root / "model-00002-of-00002.safetensors", 4099, seed=3
        ),
        "tokenizer/tokenizer.json": write_file(root / "tokenizer" / "tokenizer.json", 1000, seed=4),
        "tokenizer/sub/empty.txt": write_file(root / "tokenizer" / "sub" / "empty.txt", 0, seed=5),
    }


def make_user_files(root: Path) -> None:
    """A user's project folder: files and folders of their own, some named like the tree's."""
    write_file(root / "notes.txt", 20, seed=11)
    write_file(root / "code" / "train.py", 30, seed=12)
    write_file(root / "tokenizer" / "mine.txt", 40, seed=13)  # beside the artifact's folder
    write_file(root / ".hidden", 5, seed=14)
    (root / "empty-dir").mkdir()
    os.symlink("notes.txt", root / "link-to-notes")


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str | None, int]]:
    """Everything under ``root``: relative path -> (kind, content or link target, mode)."""
    found: dict[str, tuple[str, bytes | str | None, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        info = path.lstat()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path), 0)
        elif path.is_dir():
            found[rel] = ("dir", None, stat.S_IMODE(info.st_mode))
        else:
            found[rel] = ("file", path.read_bytes(), stat.S_IMODE(info.st_mode))
    return found


class StorageContract:
    """Behaviour shared by every ``StorageBackend``."""

    # -- hooks ------------------------------------------------------------------------------

    def stored_files(self, backend: StorageBackend) -> set[str]:
        """Every stored file, as remote paths relative to the backend's root."""
        raise NotImplementedError

    def corrupt(self, backend: StorageBackend, remote_path: str) -> None:
        """Replace the bytes stored at ``remote_path`` with different ones."""
        raise NotImplementedError

    # -- files ------------------------------------------------------------------------------

    def test_is_a_storage_backend(self, artifact_storage: StorageBackend) -> None:
        assert isinstance(artifact_storage, StorageBackend)
        assert isinstance(artifact_storage.name, str)
        assert artifact_storage.name

    @pytest.mark.parametrize("size", [0, 1, 64 * 1024 + 3, 3 * MiB + 7])
    def test_round_trip_keeps_bytes_and_checksum(
        self, artifact_storage: StorageBackend, tmp_path: Path, size: int
    ) -> None:
        src = write_file(tmp_path / "src.bin", size, seed=size)
        up = artifact_storage.upload(src, "m/1/checkpoint/src.bin")
        assert isinstance(up, TransferResult)
        assert (up.size_bytes, up.sha256) == (size, sha256_of(src))

        dest = tmp_path / "out" / "nested" / "dest.bin"
        down = artifact_storage.download(up.storage_path, dest, expected_sha256=up.sha256)
        assert dest.read_bytes() == src.read_bytes()
        assert (down.size_bytes, down.sha256) == (size, up.sha256)
        assert down.storage_path == up.storage_path

    def test_upload_follows_the_remote_layout(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        src = write_file(tmp_path / "model.bin", 100)
        remote = artifact_remote_path("org/llama", "1.0.0", "checkpoint", "model.bin")
        result = artifact_storage.upload(src, remote)
        assert self.stored_files(artifact_storage) == {"org/llama/1.0.0/checkpoint/model.bin"}
        assert result.storage_path.endswith("org/llama/1.0.0/checkpoint/model.bin")

    def test_recorded_and_plain_paths_find_the_same_file(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        src = write_file(tmp_path / "a.bin", 10)
        result = artifact_storage.upload(src, "m/1/config/a.bin")
        for path in (result.storage_path, "m/1/config/a.bin"):
            assert artifact_storage.exists(path)
            assert isinstance(artifact_storage.url(path), str)

    def test_progress_reports_every_byte(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        src = write_file(tmp_path / "a.bin", 2 * MiB + 5)
        sent: list[int] = []
        received: list[int] = []
        result = artifact_storage.upload(src, "m/1/other/a.bin", progress=sent.append)
        artifact_storage.download(result.storage_path, tmp_path / "b.bin", progress=received.append)
        assert sum(sent) == sum(received) == 2 * MiB + 5

    def test_upload_replaces_what_was_stored(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        first = write_file(tmp_path / "first.bin", 1000, seed=1)
        second = write_file(tmp_path / "second.bin", 500, seed=2)
        artifact_storage.upload(first, "m/1/other/x.bin")
        result = artifact_storage.upload(second, "m/1/other/x.bin")
        artifact_storage.download(result.storage_path, tmp_path / "got.bin")
        assert (tmp_path / "got.bin").read_bytes() == second.read_bytes()

    def test_exists_and_delete(self, artifact_storage: StorageBackend, tmp_path: Path) -> None:
        src = write_file(tmp_path / "a.bin", 10)
        assert not artifact_storage.exists("m/1/other/a.bin")
        result = artifact_storage.upload(src, "m/1/other/a.bin")
        assert artifact_storage.exists(result.storage_path)
        artifact_storage.delete(result.storage_path)
        assert not artifact_storage.exists(result.storage_path)
        assert self.stored_files(artifact_storage) == set()

    def test_delete_of_an_absent_path_is_a_no_op(self, artifact_storage: StorageBackend) -> None:
        artifact_storage.delete("m/1/other/never-stored.bin")
        assert self.stored_files(artifact_storage) == set()

    def test_download_of_an_absent_path_raises_and_writes_nothing(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        dest_dir = tmp_path / "out"
        dest_dir.mkdir()
        with pytest.raises(StorageError) as info:
            artifact_storage.download("m/1/other/never-stored.bin", dest_dir / "x.bin")
        assert info.value.backend == artifact_storage.name
        assert list(dest_dir.iterdir()) == []

    def test_corrupted_bytes_raise_and_leave_the_destination_untouched(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        src = write_file(tmp_path / "a.bin", 3000, seed=1)
        result = artifact_storage.upload(src, "m/1/checkpoint/a.bin")
        self.corrupt(artifact_storage, "m/1/checkpoint/a.bin")
        dest_dir = tmp_path / "out"
        dest = write_file(dest_dir / "a.bin", 77, seed=9)
        before = dest.read_bytes()

        with pytest.raises(ChecksumMismatchError) as info:
            artifact_storage.download(result.storage_path, dest, expected_sha256=result.sha256)

        assert info.value.backend == artifact_storage.name
        assert info.value.expected == result.sha256
        assert info.value.actual != result.sha256
        assert dest.read_bytes() == before
        assert [p.name for p in dest_dir.iterdir()] == ["a.bin"]  # no temporary file left
        assert not verify_artifact_files(artifact_storage, result.storage_path, result.sha256)

    @pytest.mark.parametrize("remote", ESCAPING_PATHS)
    def test_paths_that_escape_the_root_are_refused(
        self, artifact_storage: StorageBackend, tmp_path: Path, remote: str
    ) -> None:
        src = write_file(tmp_path / "a.bin", 10)
        dest = tmp_path / "out" / "a.bin"
        calls: list[Callable[[], object]] = [
            lambda: artifact_storage.upload(src, remote),
            lambda: artifact_storage.download(remote, dest),
            lambda: artifact_storage.exists(remote),
            lambda: artifact_storage.delete(remote),
            lambda: artifact_storage.url(remote),
        ]
        for call in calls:
            with pytest.raises(ValidationError):
                call()
        assert self.stored_files(artifact_storage) == set()
        assert not dest.exists()

    def test_a_directory_is_not_a_file_upload(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        with pytest.raises(ValidationError):
            artifact_storage.upload(tmp_path, "m/1/other/dir")
        with pytest.raises(ValidationError):
            artifact_storage.upload(tmp_path / "missing.bin", "m/1/other/missing.bin")
        assert self.stored_files(artifact_storage) == set()

    # -- directories ------------------------------------------------------------------------

    def test_directory_round_trip_keeps_the_tree(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        files = make_tree(tmp_path / "ckpt")
        remote = artifact_remote_path("m", "1", "checkpoint", "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", remote)

        assert isinstance(up, DirectoryTransferResult)
        assert up.storage_path.endswith("m/1/checkpoint/ckpt/")
        assert up.size_bytes == sum(p.stat().st_size for p in files.values())
        assert {(e.path, e.size_bytes, e.sha256) for e in up.manifest.files} == {
            (rel, p.stat().st_size, sha256_of(p)) for rel, p in files.items()
        }
        assert self.stored_files(artifact_storage) == {
            f"m/1/checkpoint/ckpt/{rel}" for rel in [*files, MANIFEST_NAME]
        }

        dest = tmp_path / "restored"
        down = download_artifact_files(
            artifact_storage, up.storage_path, dest, expected_sha256=up.sha256
        )
        assert down.sha256 == up.sha256
        restored = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
        assert restored == set(files)
        for rel, original in files.items():
            assert (dest / rel).read_bytes() == original.read_bytes()
        assert verify_artifact_files(artifact_storage, up.storage_path, up.sha256)

    # -- downloads never destroy a user's files (issue 13) -----------------------------------

    def test_directory_download_keeps_every_unrelated_file(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        files = make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        dest = tmp_path / "project"
        make_user_files(dest)
        before = snapshot(dest)

        download_artifact_files(artifact_storage, up.storage_path, dest, expected_sha256=up.sha256)

        after = snapshot(dest)
        assert {k: v for k, v in after.items() if k in before} == before
        assert set(after) - set(before) == {
            *files,
            "model-00001-of-00002.safetensors",
            "tokenizer/sub",
        } - set(before)
        for rel, original in files.items():
            assert (dest / rel).read_bytes() == original.read_bytes()

    def test_directory_download_refuses_a_file_of_the_same_name(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        files = make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        dest = tmp_path / "project"
        make_user_files(dest)
        write_file(dest / "tokenizer" / "tokenizer.json", 10, seed=42)  # the user's own
        before = snapshot(dest)

        with pytest.raises(ValidationError) as info:
            download_artifact_files(artifact_storage, up.storage_path, dest)

        assert list(info.value.errors) == ["dest"]
        assert str(dest / "tokenizer" / "tokenizer.json") in info.value.errors["dest"][0]
        assert snapshot(dest) == before

        download_artifact_files(artifact_storage, up.storage_path, dest, overwrite=True)

        after = snapshot(dest)
        replaced = {rel for rel in before if after.get(rel) != before[rel]}
        assert replaced == {"tokenizer/tokenizer.json"}  # that file only
        assert (dest / "tokenizer/tokenizer.json").read_bytes() == files[
            "tokenizer/tokenizer.json"
        ].read_bytes()

    @pytest.mark.parametrize("overwrite", [False, True])
    def test_directory_download_never_replaces_a_folder_or_a_file_in_the_way(
        self, artifact_storage: StorageBackend, tmp_path: Path, overwrite: bool
    ) -> None:
        make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        for blocker in ("file-where-a-folder-goes", "folder-where-a-file-goes"):
            dest = tmp_path / blocker
            write_file(dest / "notes.txt", 20, seed=11)
            if blocker == "file-where-a-folder-goes":
                write_file(dest / "tokenizer", 3)
            else:
                write_file(dest / "config.json" / "inside.txt", 3)
            before = snapshot(dest)
            with pytest.raises(ValidationError) as info:
                download_artifact_files(
                    artifact_storage, up.storage_path, dest, overwrite=overwrite
                )
            assert list(info.value.errors) == ["dest"]
            assert snapshot(dest) == before

    def test_file_download_onto_an_existing_file_is_refused(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        src = write_file(tmp_path / "config.json", 300, seed=1)
        up = artifact_storage.upload(src, "m/1/tokenizer/config.json")
        dest = tmp_path / "project"
        make_user_files(dest)
        write_file(dest / "config.json", 50, seed=15)  # the user's own config.json
        before = snapshot(dest)
        for target in (dest / "config.json", dest):  # the file itself, or its folder
            with pytest.raises(ValidationError) as info:
                download_artifact_files(artifact_storage, up.storage_path, target)
            assert list(info.value.errors) == ["dest"]
            assert snapshot(dest) == before

        download_artifact_files(artifact_storage, up.storage_path, dest, overwrite=True)

        assert (dest / "config.json").read_bytes() == src.read_bytes()
        assert {k: v for k, v in snapshot(dest).items() if k != "config.json"} == {
            k: v for k, v in before.items() if k != "config.json"
        }

    def test_a_missing_parent_is_refused_unless_asked_for(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        folder = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        single = artifact_storage.upload(tmp_path / "ckpt" / "config.json", "m/1/config/c.json")
        base = tmp_path / "absent"
        for up in (folder, single):
            with pytest.raises(ValidationError) as info:
                download_artifact_files(artifact_storage, up.storage_path, base / "deep" / "x")
            assert list(info.value.errors) == ["dest"]
            assert not base.exists()

        download_artifact_files(
            artifact_storage, folder.storage_path, base / "a" / "ckpt", parents=True
        )
        download_artifact_files(
            artifact_storage, single.storage_path, base / "b" / "c.json", parents=True
        )
        assert (base / "a" / "ckpt" / "config.json").is_file()
        assert (base / "b" / "c.json").is_file()

    @pytest.mark.parametrize("kind", ["file", "directory"])
    @pytest.mark.parametrize("overwrite", [False, True])
    def test_an_interrupted_download_leaves_the_destination_as_it_was(
        self, artifact_storage: StorageBackend, tmp_path: Path, kind: str, overwrite: bool
    ) -> None:
        # Ctrl-C half-way through the bytes: a real SIGINT, which Python turns into
        # KeyboardInterrupt in the main thread (SDKs move the bytes in threads of their own).
        if kind == "file":
            up = artifact_storage.upload(
                write_file(tmp_path / "big.bin", 2 * MiB), "m/1/other/big.bin"
            )
        else:
            make_tree(tmp_path / "ckpt")
            up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        dest = tmp_path / "project"
        make_user_files(dest)
        if overwrite:  # files the download would replace, if it finished
            write_file(dest / "big.bin", 5, seed=7)
            write_file(dest / "config.json", 5, seed=7)
        before = snapshot(dest)
        moved = 0

        def interrupt(n: int) -> None:
            nonlocal moved
            moved += n
            if moved > MiB // 2:
                moved = -(1 << 60)  # once
                os.kill(os.getpid(), signal.SIGINT)

        with pytest.raises(KeyboardInterrupt):
            download_artifact_files(
                artifact_storage, up.storage_path, dest, progress=interrupt, overwrite=overwrite
            )
        assert snapshot(dest) == before

        fresh = tmp_path / "fresh" / "deeper"
        moved = 0
        with pytest.raises(KeyboardInterrupt):
            download_artifact_files(
                artifact_storage, up.storage_path, fresh, progress=interrupt, parents=True
            )
        assert not (tmp_path / "fresh").exists()

    def test_a_file_that_appears_during_the_download_is_kept_and_nothing_is_moved_in(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        dest = tmp_path / "project"
        make_user_files(dest)
        before = snapshot(dest)
        late = dest / "tokenizer" / "sub" / "empty.txt"

        def someone_writes(n: int) -> None:
            if not late.exists():
                write_file(late, 9, seed=9)

        with pytest.raises(ValidationError) as info:
            download_artifact_files(
                artifact_storage, up.storage_path, dest, progress=someone_writes
            )

        assert list(info.value.errors) == ["dest"]
        after = snapshot(dest)
        assert {rel: after[rel] for rel in before} == before
        assert set(after) - set(before) == {"tokenizer/sub", "tokenizer/sub/empty.txt"}
        assert late.read_bytes() == write_file(tmp_path / "same.bin", 9, seed=9).read_bytes()

    def test_downloads_follow_the_umask(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        folder = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        single = artifact_storage.upload(tmp_path / "ckpt" / "config.json", "m/1/config/c.json")
        for umask in (0o022, 0o077):
            old = os.umask(umask)
            try:
                out = tmp_path / f"out-{umask:o}"
                download_artifact_files(
                    artifact_storage, folder.storage_path, out / "tree", parents=True
                )
                download_artifact_files(artifact_storage, single.storage_path, out / "c.json")
            finally:
                os.umask(old)
            modes = {
                p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode)
                for p in out.rglob("*")
            }
            assert modes
            for rel, mode in modes.items():
                expected = (0o777 if (out / rel).is_dir() else 0o666) & ~umask
                assert mode == expected, rel

    def test_corrupted_directory_file_leaves_the_destination_untouched(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        self.corrupt(artifact_storage, "m/1/checkpoint/ckpt/tokenizer/tokenizer.json")
        dest = tmp_path / "downloads" / "restored"
        make_user_files(dest)
        before = snapshot(dest.parent)

        with pytest.raises(ChecksumMismatchError):
            download_artifact_files(
                artifact_storage, up.storage_path, dest, expected_sha256=up.sha256
            )

        assert snapshot(dest.parent) == before  # no staging left either
        assert not verify_artifact_files(artifact_storage, up.storage_path, up.sha256)

    def test_corrupted_manifest_is_caught_by_the_recorded_checksum(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        self.corrupt(artifact_storage, f"m/1/checkpoint/ckpt/{MANIFEST_NAME}")
        with pytest.raises(ChecksumMismatchError):
            download_artifact_files(
                artifact_storage, up.storage_path, tmp_path / "out", expected_sha256=up.sha256
            )
        assert not (tmp_path / "out").exists()

    def test_directory_delete_removes_every_file(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        up = upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        delete_artifact_files(artifact_storage, up.storage_path)
        assert self.stored_files(artifact_storage) == set()
        delete_artifact_files(artifact_storage, up.storage_path)  # absent: a no-op

    def test_directory_with_a_symlink_to_a_directory_is_refused(
        self, artifact_storage: StorageBackend, tmp_path: Path
    ) -> None:
        make_tree(tmp_path / "ckpt")
        outside = tmp_path / "elsewhere"
        write_file(outside / "secret.txt", 10)
        os.symlink(outside, tmp_path / "ckpt" / "linked")
        with pytest.raises(ValidationError):
            upload_artifact_files(artifact_storage, tmp_path / "ckpt", "m/1/checkpoint/ckpt")
        assert self.stored_files(artifact_storage) == set()
