"""Export directories on disk: writing bundles as JSON Lines with a manifest, reading them back.

The writer fills a temporary directory beside the destination and renames it into place
only once the manifest is written, so that a failed export leaves nothing behind. The
reader checks the manifest's SHA-256 of every file before anything is imported, then reads
one model's lines from every file at once (the files share the model order), so memory
stays bounded by the largest model whatever the size of the export.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from crucible_model_registry.domain.exchange import (
    CORE_KINDS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    ExportBundle,
    ImportConflict,
    ModelBundle,
    file_name,
)
from crucible_model_registry.errors import ChecksumMismatchError, ValidationError

__all__ = ["ExportWriter", "export_kinds", "read_bundles", "read_manifest", "verify_files"]

_CHUNK = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ExportWriter:
    """Writes an export into a temporary directory; :meth:`commit` moves it to ``dest``.

    Args:
        dest: the export directory to create; it must not exist, or be an empty directory.
        kinds: every kind of line to write a file for (empty files included).
    """

    def __init__(self, dest: Path, kinds: list[str]) -> None:
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise ValidationError.single(
                "dest", f"{str(dest)!r} exists and is not an empty directory; pick a new path"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self.root = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        self.kinds = kinds
        self.counts = dict.fromkeys(kinds, 0)
        self._files: dict[str, IO[str]] = {
            kind: (self.root / file_name(kind)).open("w", encoding="utf-8") for kind in kinds
        }

    def write(self, bundle: ExportBundle) -> None:
        """Append one model's lines (JSON text, one line each) to the files.

        Raises:
            ValidationError: a kind of line this export has no file for.
        """
        for kind, lines in bundle.lines.items():
            if not lines:
                continue
            sink = self._files.get(kind)
            if sink is None:
                raise ValidationError.single("kinds", f"the export has no file for {kind!r} lines")
            sink.write("\n".join(lines))
            sink.write("\n")
            self.counts[kind] += len(lines)

    def commit(self, extra: dict[str, Any]) -> int:
        """Close the files, write the manifest, move the export into place; the file count."""
        for fh in self._files.values():
            fh.close()
        files = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            rel = path.relative_to(self.root).as_posix()
            files[rel] = {"sha256": _sha256(path), "size_bytes": path.stat().st_size}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **extra,
            "counts": self.counts,
            "files": files,
        }
        (self.root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if self.dest.exists():
            self.dest.rmdir()  # empty, checked above
        # One rename: readers see either no export or a complete one.
        self.root.rename(self.dest)
        return len(files) + 1

    def abort(self) -> None:
        """Remove everything written so far."""
        for fh in self._files.values():
            fh.close()
        shutil.rmtree(self.root, ignore_errors=True)


def read_manifest(src: Path) -> dict[str, Any]:
    """The export's manifest, checked for our format and a version this release reads.

    Raises:
        ValidationError: ``src`` is not an export directory of a format version we read.
    """
    path = src / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValidationError.single(
            "src", f"{str(src)!r} is not an export: it has no {MANIFEST_NAME}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ValidationError.single("src", f"{path} cannot be read: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValidationError.single("src", f"{path} is not a crucible-model-registry export")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValidationError.single(
            "src",
            f"the export has format version {version!r}; this release reads up to "
            f"{FORMAT_VERSION}: upgrade crucible-model-registry",
        )
    if not isinstance(manifest.get("files"), dict):
        raise ValidationError.single("src", f"{path} lists no files")
    return manifest


def verify_files(src: Path, manifest: dict[str, Any]) -> None:
    """Check the SHA-256 of every file the manifest lists, before anything is imported.

    Raises:
        ValidationError: a listed file is missing or the path leaves the export.
        ChecksumMismatchError: a file's bytes differ from the manifest's SHA-256.
    """
    root = src.resolve()
    for rel, entry in manifest["files"].items():
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise ValidationError.single("src", f"manifest path {rel!r} leaves the export")
        if not path.is_file():
            raise ValidationError.single("src", f"the export lacks {rel}, which its manifest lists")
        actual = _sha256(path)
        if actual != entry.get("sha256"):
            raise ChecksumMismatchError(
                backend="export", path=rel, expected=str(entry.get("sha256")), actual=actual
            )


class _Lines:
    """One kind's file, read line by line with one line of look-ahead."""

    def __init__(self, path: Path | None) -> None:
        self._fh: IO[str] | None = None if path is None else path.open(encoding="utf-8")
        self._number = 0
        self.peeked: tuple[int, dict[str, Any] | None, str] | None = None
        self._advance()

    def _advance(self) -> None:
        self.peeked = None
        if self._fh is None:
            return
        raw = self._fh.readline()
        if not raw:
            self._fh.close()
            self._fh = None
            return
        self._number += 1
        try:
            line = json.loads(raw)
        except ValueError as exc:
            self.peeked = (self._number, None, str(exc))
            return
        if isinstance(line, dict):
            self.peeked = (self._number, line, "")
        else:
            self.peeked = (self._number, None, "not a JSON object")

    def pop(self) -> None:
        self._advance()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def read_bundles(
    src: Path, kinds: list[str], strays: list[ImportConflict]
) -> Iterator[ModelBundle]:
    """The export's models, each with its lines of every kind, in export order.

    A line that cannot be parsed, or names another model than its neighbours, makes the
    model being read a problem bundle (imported as nothing); a line of a model that
    ``models.jsonl`` does not list is reported in ``strays``.
    """
    order: dict[str, int] = {}
    with (src / file_name("models")).open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                order.setdefault(json.loads(raw)["name"], len(order))
            except (ValueError, KeyError, TypeError) as exc:
                where = f"{file_name('models')} line {number}"
                strays.append(ImportConflict("lines", "?", where, f"unreadable: {exc}"))
    files = {
        kind: _Lines(src / file_name(kind) if (src / file_name(kind)).exists() else None)
        for kind in kinds
    }
    models = files.pop("models")
    try:
        while models.peeked is not None:
            _number, model, _error = models.peeked
            models.pop()
            if model is None or model.get("name") not in order:
                continue  # reported above
            bundle = ModelBundle(model)
            position = order[bundle.name]
            for kind, lines in files.items():
                bundle.lines[kind] = _take(
                    kind, lines, bundle, position=position, order=order, strays=strays
                )
            yield bundle
    finally:
        models.close()
        for lines in files.values():
            lines.close()


def _take(
    kind: str,
    lines: _Lines,
    bundle: ModelBundle,
    *,
    position: int,
    order: dict[str, int],
    strays: list[ImportConflict],
) -> list[dict[str, Any]]:
    taken: list[dict[str, Any]] = []
    while lines.peeked is not None:
        number, line, error = lines.peeked
        where = f"{file_name(kind)} line {number}"
        if line is None:
            bundle.problems.append(f"{where} is unreadable: {error}")
            lines.pop()
            continue
        model = line.get("model")
        at = order.get(model) if isinstance(model, str) else None
        if at is None:
            strays.append(
                ImportConflict("lines", str(model), where, "its model is not in models.jsonl")
            )
            lines.pop()
            continue
        if at > position:
            break
        if at < position:
            bundle.problems.append(f"{where} is out of order (model {model!r})")
        else:
            taken.append(line)
        lines.pop()
    return taken


def export_kinds(extra: list[str]) -> list[str]:
    """Every kind an export has: the core kinds, then the schema's extra history tables."""
    return [*CORE_KINDS, *extra]
