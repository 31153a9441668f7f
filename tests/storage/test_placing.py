"""The undo of a failed download's placement, where another process raced it (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crucible_model_registry.storage._placing import Placement


def _stage(place: Placement, beside: Path, name: str, data: bytes) -> Path:
    staging = place.staging_dir(beside) if place._staging is None else place._staging
    staged = staging / name
    staged.write_bytes(data)
    return staged


def test_undo_puts_a_replaced_file_back_and_keeps_a_file_written_meanwhile(tmp_path: Path):
    mine = tmp_path / "config.json"
    mine.write_bytes(b"the user's")

    def download_that_fails_after_moving_in() -> None:
        with Placement(overwrite=True) as place:
            place.move_in(_stage(place, tmp_path, "a", b"the artifact's"), mine)
            assert mine.read_bytes() == b"the artifact's"
            mine.unlink()
            mine.write_bytes(b"another process's")  # took the path after we placed ours
            raise RuntimeError("the download failed after moving in")

    with pytest.raises(RuntimeError):
        download_that_fails_after_moving_in()

    assert mine.read_bytes() == b"another process's"  # not removed: it is not ours
    assert (tmp_path / "config.json.cmr-restored-1").read_bytes() == b"the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "config.json.cmr-restored-1",
    ]


def test_undo_removes_only_what_it_created(tmp_path: Path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old.txt").write_bytes(b"old")

    def interrupted() -> None:
        with Placement() as place:
            place.make_dirs(tmp_path / "new" / "deeper", parents=True)
            place.move_in(_stage(place, tmp_path, "a", b"x"), tmp_path / "keep" / "sub" / "a.bin")
            place.move_in(_stage(place, tmp_path, "b", b"y"), tmp_path / "new" / "deeper" / "b")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "keep",
        "keep/old.txt",
    ]
