"""Artifact commands: upload, download and verify with progress bars; url, artifact delete, gc."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session
from crucible_model_registry.domain.enums import ArtifactType

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.domain.records import Artifact, ModelVersion
    from crucible_model_registry.storage.base import ProgressCallback

__all__ = ["app"]

app = typer.Typer()
PANEL = "Artifacts"
ARTIFACT_TYPES = tuple(t.value for t in ArtifactType)

Ref = Annotated[
    str,
    typer.Argument(help="Version: id, model@version, model@stage, model@latest or alias."),
]
TypeSelector = Annotated[
    str | None,
    typer.Option("--type", "-t", help="Pick the version's artifact of this type."),
]
IdSelector = Annotated[
    int | None,
    typer.Option("--artifact-id", help="Pick the version's artifact with this id."),
]


def _complete_types(incomplete: str) -> list[str]:
    return [t for t in ARTIFACT_TYPES if t.startswith(incomplete)]


def _not_found(v: ModelVersion, what: str) -> Exception:
    from crucible_model_registry.errors import NotFoundError

    return NotFoundError("artifact", f"{v.ref} {what}", "see `cmr show` for its artifacts")


def _choose(v: ModelVersion, artifact_type: str | None, artifact_id: int | None) -> Artifact:
    """The one artifact of ``v`` the selectors name (the only one when none is given)."""
    from crucible_model_registry.domain.enums import parse_enum
    from crucible_model_registry.errors import ValidationError

    candidates = list(v.artifacts)
    if artifact_id is not None:
        candidates = [a for a in candidates if a.id == artifact_id]
        if not candidates:
            raise _not_found(v, f"artifact id {artifact_id}")
    kind = None
    if artifact_type is not None:
        kind = parse_enum(ArtifactType, artifact_type, field="type")
        candidates = [a for a in candidates if a.type is kind]
        if not candidates:
            raise _not_found(v, f"type {kind.value}")
    if not candidates:
        raise _not_found(v, "(it has no artifacts)")
    if len(candidates) > 1:
        listed = "; ".join(_describe(a, with_type=kind is None) for a in candidates)
        what = f"{len(candidates)} {kind.value} artifacts" if kind else "several artifacts"
        how = "--artifact-id ID" if kind else "--type TYPE or --artifact-id ID"
        raise ValidationError.single(
            "artifact", f"{v.ref} has {what}: {listed}; pick one with {how}"
        )
    return candidates[0]


def _describe(a: Artifact, *, with_type: bool) -> str:
    """``id 7: checkpoint minilm-ft/ (87.0 MiB)``: what tells two artifacts apart."""
    from crucible_model_registry.cli._render import fmt_size

    stripped = a.storage_path.rstrip("/")
    name = stripped.rsplit("/", 1)[-1] + ("/" if a.storage_path.endswith("/") else "")
    size = f" ({fmt_size(a.size_bytes)})" if a.size_bytes is not None else ""
    kind = f"{a.type.value} " if with_type else ""
    return f"id {a.id}: {kind}{name}{size}"


def _local_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@contextlib.contextmanager
def _progress(description: str, total: int | None) -> Iterator[ProgressCallback | None]:
    """A rich progress bar with bytes/s on stderr; nothing when quiet or not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    session = _session.current()
    if session.quiet or session.json:
        _hush_hub()
    if session.quiet or not console.is_terminal:
        yield None
        return
    _hush_hub()  # our bar replaces huggingface_hub's
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(increment: int) -> None:
            progress.update(task, advance=increment)

        yield advance


def _hush_hub() -> None:
    """Keep ``huggingface_hub``'s own progress bars and card warnings off our output.

    Without importing it: its constants read the variable at import; if it is loaded
    already, its switch is flipped instead.
    """
    import logging
    import os
    import sys

    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        hub_utils.disable_progress_bars()  # type: ignore[attr-defined]
    else:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    # "Repo card metadata block was not found. Setting CardData to empty." on every upload.
    logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)


def _say_artifact(verb: str, a: Artifact, v: ModelVersion | None = None) -> None:
    def human(console: Console) -> None:
        from rich.text import Text

        from crucible_model_registry.cli._render import fmt_size

        line = Text(f"{verb} {a.type.value} artifact {a.id}")
        if v is not None:
            line.append(" of ").append(v.ref, style="bold")
        line.append(f": {a.storage_backend} {a.storage_path}")
        if a.size_bytes is not None:
            line.append(f" ({fmt_size(a.size_bytes)}")
            line.append(f", sha256 {a.checksum[:12]})" if a.checksum else ")")
        console.print(line)

    _session.emit(a, human=human, quiet=[a.id])


@app.command(rich_help_panel=PANEL)
def upload(
    ref: Ref,
    artifact_type: Annotated[
        str,
        typer.Argument(
            help="checkpoint, config, tokenizer, merged, gguf, onnx, tensorrt, adapter, other.",
            metavar="TYPE",
            autocompletion=_complete_types,
        ),
    ],
    path: Annotated[
        Path, typer.Argument(help="A file or a directory (its whole tree is uploaded).")
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Stored name (default: the file or directory name)."),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Upload a file or directory as an artifact of a version, checksummed as it goes."""
    registry = _session.current().registry()
    v = registry.get_version(ref)
    total = _local_size(path) if path.exists() else None
    if json_flag:
        _hush_hub()
    with _progress(f"upload {path.name}", total) as progress:
        a = registry.upload_artifact(v, artifact_type, path, name=name, progress=progress)
    if json_flag:
        _session.print_json(a)
    else:
        _say_artifact("Uploaded", a, v)


@app.command(rich_help_panel=PANEL)
def download(
    ref: Ref,
    dest: Annotated[
        Path,
        typer.Argument(
            help="Where to put it. A folder artifact's files are added to this directory "
            "(created if missing), beside what is there: nothing already there is removed. "
            "A file artifact is written to this path, or inside it if it is a directory.",
        ),
    ] = Path(),
    *,
    artifact_type: TypeSelector = None,
    artifact_id: IdSelector = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace existing files that have the name of one being written (those only).",
        ),
    ] = False,
    parents: Annotated[
        bool, typer.Option("--parents", help="Create the destination's missing parent folders.")
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Download a version's artifact, verified against its SHA-256 before it lands.

    Everything is downloaded and verified in a staging folder first; an error or Ctrl-C
    leaves the destination exactly as it was. A file of the same name as one being written
    is an error naming it, unless --overwrite.
    """
    registry = _session.current().registry()
    v = registry.get_version(ref)
    a = _choose(v, artifact_type, artifact_id)
    if json_flag:
        _hush_hub()
    with _progress(f"download {a.type.value}", a.size_bytes) as progress:
        target = registry.download_artifact(
            a, dest, overwrite=overwrite, parents=parents, progress=progress
        )
    doc = {"artifact": a, "path": str(Path(target).absolute())}
    _session.emit(
        doc,
        json_flag=json_flag,
        human=lambda console: console.print(
            f"Downloaded {a.type.value} artifact {a.id} of {v.ref} to {doc['path']}",
            markup=False,
        ),
        quiet=[doc["path"]],
    )


@app.command(rich_help_panel=PANEL)
def url(
    ref: Ref,
    *,
    artifact_type: TypeSelector = None,
    artifact_id: IdSelector = None,
    expires_in: Annotated[
        int, typer.Option("--expires-in", min=1, help="Seconds a presigned URL stays valid.")
    ] = 3600,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            metavar="PATH",
            help="One file of a folder artifact (as its manifest lists it).",
        ),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Print a URL to fetch a version's artifact from (presigned where supported).

    For a folder artifact, the URL of its manifest (cmr-manifest.json: every file's path,
    size and SHA-256), or of one of its files with --file.
    """
    registry = _session.current().registry()
    a = _choose(registry.get_version(ref), artifact_type, artifact_id)
    link = registry.artifact_url(a, expires_in=expires_in, file=file)
    if _session.current().wants_json(json_flag):
        _session.print_json(
            {"artifact_id": a.id, "file": file, "url": link, "expires_in": expires_in}
        )
    else:
        typer.echo(link)


@app.command(rich_help_panel=PANEL)
def verify(
    ref: Ref,
    artifact_type: TypeSelector = None,
    artifact_id: IdSelector = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Re-read stored bytes and compare them with the recorded SHA-256 (exit 1 on mismatch).

    Without --type or --artifact-id, every artifact of the version that has a checksum.
    An artifact whose backend cannot be reached is reported and the others still checked.
    """
    from crucible_model_registry.errors import (
        ConfigurationError,
        StorageError,
        ValidationError,
    )

    registry = _session.current().registry()
    v = registry.get_version(ref)
    if artifact_type is None and artifact_id is None:
        chosen = [a for a in v.artifacts if a.checksum is not None]
        if not chosen:
            raise ValidationError.single(
                "artifact", f"{v.ref} has no artifacts with a recorded checksum to verify"
            )
    else:
        chosen = [_choose(v, artifact_type, artifact_id)]
    if json_flag:
        _hush_hub()
    results: list[tuple[Artifact, bool | None, str | None]] = []
    total = sum(a.size_bytes or 0 for a in chosen) or None
    with _progress(f"verify {v.ref}", total) as progress:
        for a in chosen:
            try:
                results.append((a, registry.verify_artifact(a, progress=progress), None))
            except (ConfigurationError, StorageError) as exc:
                results.append((a, None, str(exc)))
    doc = [
        {"artifact_id": a.id, "type": a.type.value, "ok": ok, "error": error}
        for a, ok, error in results
    ]

    def human(console: Console) -> None:
        from rich.text import Text

        for a, ok, error in results:
            if ok is None:
                mark = Text("UNREACHABLE", style="bold yellow")
            else:
                mark = (
                    Text("ok         ", style="green")
                    if ok
                    else Text("MISMATCH   ", style="bold red")
                )
            line = mark.append(f" {a.type.value} artifact {a.id}: {a.storage_path}", style="")
            if error is not None:
                line.append(f" ({error})", style="")
            console.print(line)

    _session.emit(doc, json_flag=json_flag, human=human)
    bad = [str(a.id) for a, ok, _ in results if ok is False]
    unreachable = [str(a.id) for a, ok, _ in results if ok is None]
    problems = []
    if bad:
        problems.append(
            f"stored bytes of artifact(s) {', '.join(bad)} of {v.ref} do not match "
            "their recorded SHA-256"
        )
    if unreachable:
        problems.append(
            f"artifact(s) {', '.join(unreachable)} could not be read (see above); configure "
            "their backends (CMR_STORAGES) to verify them"
        )
    if problems:
        raise _session.CommandError("; ".join(problems))


artifact_app = typer.Typer(help="Delete a version's artifacts.", no_args_is_help=True)
app.add_typer(artifact_app, name="artifact", rich_help_panel=PANEL)


@artifact_app.command("delete")
def artifact_delete(
    ref: Ref,
    *,
    artifact_type: TypeSelector = None,
    artifact_id: IdSelector = None,
    keep_bytes: Annotated[
        bool, typer.Option("--keep-bytes", help="Delete the record only; leave the bytes.")
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Delete one artifact of a version: its record, then its bytes if nothing else uses them.

    The bytes stay when the artifact was registered by reference (they are not this
    version's upload) or another artifact record still references them.
    """
    registry = _session.current().registry()
    v = registry.get_version(ref)
    a = _choose(v, artifact_type, artifact_id)
    result = registry.delete_artifact(a, keep_bytes=keep_bytes)
    reasons = {
        "keep_bytes": "as asked (--keep-bytes)",
        "reference": "it was registered by reference: they are not this version's upload",
        "shared": "artifact(s) "
        + ", ".join(str(i) for i in result.shared_with)
        + " still reference them",
    }
    if result.bytes_deleted:
        fate = "its bytes were deleted"
    else:
        fate = f"its bytes were kept: {reasons.get(result.reason or '', result.reason)}"
    _session.emit(
        result,
        json_flag=json_flag,
        human=lambda console: console.print(
            f"Deleted {a.type.value} artifact {a.id} of {v.ref}; {fate}", markup=False
        ),
        quiet=[a.id],
    )


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``0`` -> a timedelta."""
    import re

    from crucible_model_registry.errors import ValidationError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if match is None:
        raise ValidationError.single(
            "older_than", f"{text!r} is not a duration; write it like 30m, 24h, 7d or 0"
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@app.command(rich_help_panel=PANEL)
def gc(
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Age a leftover temporary or incomplete upload needs (30m, 24h, 7d, 0).",
        ),
    ] = "24h",
    json_flag: _session.JsonFlag = False,
) -> None:
    """Remove stored bytes no artifact record references, and leftovers of killed uploads.

    On every configured backend: files in the registry's layout (<model>/<version>/<type>/)
    that no artifact references, .cmr-tmp temporaries and incomplete S3 multipart uploads
    older than --older-than. Never anything an artifact references or an upload in
    progress holds, nor files outside the layout of the registry's models.
    """
    age = _duration(older_than)
    report = _session.current().registry().collect_garbage(dry_run=dry_run, older_than=age)

    def human(console: Console) -> None:
        from rich.table import Table

        from crucible_model_registry.cli._render import fmt_size

        if report.items:
            table = Table(box=None, pad_edge=False)
            for column in ("kind", "backend", "path", "size"):
                table.add_column(column, justify="right" if column == "size" else "left")
            for item in report.items:
                table.add_row(item.kind, item.backend, item.path, fmt_size(item.size_bytes))
            console.print(table)
        verb = "Would remove" if report.dry_run else "Removed"
        console.print(
            f"{verb} {len(report.items)} item(s), {fmt_size(report.size_bytes)}"
            + (" (dry run: nothing was removed)" if report.dry_run else ""),
            markup=False,
        )
        for skipped in report.skipped_backends:
            console.print(f"skipped {skipped}", markup=False)

    _session.emit(report, json_flag=json_flag, human=human, quiet=[i.path for i in report.items])
    if report.errors:
        raise _session.CommandError(
            f"{len(report.errors)} item(s) could not be removed: " + "; ".join(report.errors[:3])
        )
