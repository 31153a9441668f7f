"""Putting verified downloads into a user's destination without touching anything else there.

A download never deletes, moves or rewrites a file that is not the artifact's (issue 13):

- the destination's parent must exist unless the caller asks for ``parents``;
- every file the artifact would write is checked first: a file of the same name is an error
  naming it unless ``overwrite`` (then exactly those files are replaced), and a directory or
  a non-directory in the way is always an error;
- the bytes are downloaded and verified in a staging directory of our own, created beside
  (or, for a folder that exists, inside) the destination so that moving them in is a rename
  on one filesystem; only then are they moved in, each with a rename that refuses to
  replace a file that appeared meanwhile (``os.link``), unless ``overwrite``;
- any failure (a checksum mismatch, Ctrl-C, a full disk) undoes what this download did: the
  files it moved in are removed, the files it replaced are put back, the directories it
  created are removed again, and the staging directory goes. Nothing else is ever removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crucible_model_registry.errors import ValidationError
from crucible_model_registry.storage._streaming import fsync_dir

__all__ = [
    "STAGING_PREFIX",
    "STAGING_SUFFIX",
    "Placement",
    "refuse_collisions",
]

STAGING_PREFIX = ".cmr-download-"
STAGING_SUFFIX = ".cmr-tmp"
_SHOWN = 5  # colliding names listed in a message; the rest are counted
# os.link is refused by filesystems without hard links (vfat, some FUSE and network mounts).
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK})


def refuse_collisions(root: Path, paths: Sequence[str], *, overwrite: bool) -> None:
    """Refuse to download ``paths`` (``/``-separated, relative) into the directory ``root``.

    Raises:
        ValidationError: (field ``dest``) a file of the same name exists and ``overwrite`` is
            False; or something that is not a regular file is in the way (a directory where a
            file goes, a file where a directory goes, a symlink leading out of ``root``),
            which not even ``overwrite`` replaces.
    """
    resolved_root = root.resolve()
    existing: list[str] = []
    blocked: list[str] = []
    for rel in paths:
        target = root.joinpath(*rel.split("/"))
        for ancestor in reversed(target.relative_to(root).parents[:-1]):
            where = root / ancestor
            if os.path.lexists(where) and not where.is_dir():
                blocked.append(f"{where} is not a directory")
                break
        else:
            if not os.path.lexists(target):
                _inside(resolved_root, target.parent, blocked)
            elif target.is_dir():
                blocked.append(f"{target} is a directory")
            elif target.is_symlink() or not target.is_file():
                blocked.append(f"{target} is not a regular file")
            else:
                _inside(resolved_root, target.parent, blocked)
                existing.append(str(target))
    if blocked:
        raise ValidationError.single(
            "dest",
            f"cannot download into {root}: {_listing(blocked)}; nothing was changed "
            "(move it away or choose another destination)",
        )
    if existing and not overwrite:
        raise ValidationError.single(
            "dest",
            f"{_listing(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "nothing was changed: pass overwrite=True (cmr download --overwrite) to replace "
            "those files, or choose another destination",
        )


def _inside(resolved_root: Path, directory: Path, blocked: list[str]) -> None:
    # A symlinked folder inside the destination that leads out of it would carry the write
    # somewhere the user did not name.
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    resolved = probe.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        blocked.append(f"{directory} leads outside the destination (a symlink)")


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown if len(items) <= _SHOWN else f"{shown} and {len(items) - _SHOWN} more"


@dataclass
class Placement:
    """One download's changes to the user's filesystem, so that a failure can undo exactly them.

    Use as a context manager: leaving the block with an exception (Ctrl-C included) undoes
    every change recorded here, newest first; leaving it normally keeps them. The staging
    directory is removed either way.

    Args:
        overwrite: whether :meth:`move_in` may replace an existing file.
    """

    overwrite: bool = False
    _created_dirs: list[Path] = field(default_factory=list)
    _placed: list[tuple[Path, tuple[int, ...]]] = field(default_factory=list)  # (path, identity)
    _replaced: list[tuple[Path, Path]] = field(default_factory=list)  # (target, saved copy)
    _staging: Path | None = None
    _saved: int = 0

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            if exc is not None:
                self._undo()
        finally:
            if self._staging is not None:
                # Ours alone: made by mkdtemp under a name no artifact file can have.
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None
            if exc is not None:
                self._remove_created_dirs()

    def make_dirs(self, directory: Path, *, parents: bool, field_name: str = "dest") -> None:
        """Create ``directory`` if missing (its missing ancestors only with ``parents``).

        What this creates is remembered, and removed again if the download fails.

        Raises:
            ValidationError: ``directory``'s parent does not exist and ``parents`` is False,
                or something other than a directory is in the way.
        """
        missing: list[Path] = []
        probe = directory
        while not probe.is_dir():
            if os.path.lexists(probe):
                raise ValidationError.single(field_name, f"{probe} exists and is not a directory")
            missing.append(probe)
            probe = probe.parent
        if len(missing) > 1 and not parents:
            raise ValidationError.single(
                field_name,
                f"{missing[-1]} does not exist; create it first or pass parents=True "
                "(cmr download --parents)",
            )
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:
                if not new.is_dir():
                    raise
                continue  # made by someone else meanwhile: not ours to remove
            self._created_dirs.append(new)

    def staging_dir(self, beside: Path) -> Path:
        """A private directory in ``beside`` (the destination's filesystem) for the download."""
        assert self._staging is None, "one staging directory per placement"
        self._staging = Path(
            tempfile.mkdtemp(prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX, dir=beside)
        )
        return self._staging

    def move_in(self, source: Path, target: Path) -> None:
        """Move the staged file ``source`` to ``target``, creating its missing directories.

        Without ``overwrite`` a file that appeared at ``target`` since the check is never
        replaced (a hard link refuses to); with it, the file replaced is kept in the staging
        directory until the whole download succeeded, so a failure can put it back.

        Raises:
            ValidationError: (field ``dest``) ``target`` exists and ``overwrite`` is False.
            OSError: the filesystem failed.
        """
        self.make_dirs(target.parent, parents=True)
        if self.overwrite and os.path.lexists(target):
            if target.is_dir() and not target.is_symlink():
                raise ValidationError.single("dest", f"{target} is a directory")
            assert self._staging is not None
            self._saved += 1
            saved = self._staging / f"replaced-{self._saved}"
            os.replace(target, saved)
            self._replaced.append((target, saved))
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError as exc:
            raise ValidationError.single(
                "dest", f"{target} appeared during the download; nothing was changed"
            ) from exc
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if os.path.lexists(target):  # no atomic no-replace rename here: check, then rename
                raise ValidationError.single(
                    "dest", f"{target} appeared during the download; nothing was changed"
                ) from exc
            os.rename(source, target)
        else:
            os.unlink(source)  # the staged name; the bytes live on at target
        self._placed.append((target, _identity(target)))

    def sync(self) -> None:
        """Make the renames durable (every directory a file was moved into)."""
        for directory in dict.fromkeys(p.parent for p, _ in self._placed):
            fsync_dir(directory)

    def _undo(self) -> None:
        for target, identity in reversed(self._placed):
            with contextlib.suppress(OSError):
                if _identity(target) == identity:  # still the file this download put there
                    target.unlink()
        self._placed.clear()
        for target, saved in reversed(self._replaced):
            with contextlib.suppress(OSError):
                _restore(saved, target)
        self._replaced.clear()

    def _remove_created_dirs(self) -> None:
        for directory in reversed(self._created_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty: a directory this download made
        self._created_dirs.clear()


def _identity(path: Path) -> tuple[int, ...]:
    """Tells the file at ``path`` from a later one there (inode numbers alone are reused)."""
    info = path.lstat()
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _restore(saved: Path, target: Path) -> None:
    """Put the user's file ``saved`` back at ``target`` without replacing anything there.

    If something took ``target`` meanwhile, the user's file goes beside it under a new
    name instead of being dropped with the staging directory.
    """
    for attempt in range(100):
        where = (
            target if attempt == 0 else target.with_name(f"{target.name}.cmr-restored-{attempt}")
        )
        try:
            os.link(saved, where, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in _NO_LINKS or os.path.lexists(where):
                raise
            os.rename(saved, where)
            return
        os.unlink(saved)
        return
