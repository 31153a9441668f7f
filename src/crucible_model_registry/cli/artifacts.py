"""Artifact commands: ``upload`` and ``download`` with progress bars, ``url`` and ``verify``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
    if artifact_type is not None:
        kind = parse_enum(ArtifactType, artifact_type, field="type")
        candidates = [a for a in candidates if a.type is kind]
        if not candidates:
            raise _not_found(v, f"type {kind.value}")
    if not candidates:
        raise _not_found(v, "(it has no artifacts)")
    if len(candidates) > 1:
        listed = ", ".join(f"{a.id} ({a.type.value})" for a in candidates)
        raise ValidationError.single(
            "artifact",
            f"{v.ref} has several artifacts: {listed}; pick one with --type or --artifact-id",
        )
    return candidates[0]


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
    if _session.current().quiet or not console.is_terminal:
        yield None
        return
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
        typer.Argument(help="Destination file, or an existing directory to download into."),
    ] = Path(),
    artifact_type: TypeSelector = None,
    artifact_id: IdSelector = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Download a version's artifact, verified against its SHA-256 before it lands."""
    registry = _session.current().registry()
    v = registry.get_version(ref)
    a = _choose(v, artifact_type, artifact_id)
    with _progress(f"download {a.type.value}", a.size_bytes) as progress:
        target = registry.download_artifact(a, dest, progress=progress)
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
    artifact_type: TypeSelector = None,
    artifact_id: IdSelector = None,
    expires_in: Annotated[
        int, typer.Option("--expires-in", min=1, help="Seconds a presigned URL stays valid.")
    ] = 3600,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Print a URL to fetch a version's artifact from (presigned where supported)."""
    registry = _session.current().registry()
    a = _choose(registry.get_version(ref), artifact_type, artifact_id)
    link = registry.artifact_url(a, expires_in=expires_in)
    if _session.current().wants_json(json_flag):
        _session.print_json({"artifact_id": a.id, "url": link, "expires_in": expires_in})
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
    """
    from crucible_model_registry.errors import ValidationError

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
    results = [(a, registry.verify_artifact(a)) for a in chosen]
    doc = [{"artifact_id": a.id, "type": a.type.value, "ok": ok} for a, ok in results]

    def human(console: Console) -> None:
        from rich.text import Text

        for a, ok in results:
            mark = Text("ok      ", style="green") if ok else Text("MISMATCH", style="bold red")
            console.print(
                mark.append(f" {a.type.value} artifact {a.id}: {a.storage_path}", style="")
            )

    _session.emit(doc, json_flag=json_flag, human=human)
    bad = [str(a.id) for a, ok in results if not ok]
    if bad:
        raise _session.CommandError(
            f"stored bytes of artifact(s) {', '.join(bad)} of {v.ref} do not match "
            "their recorded SHA-256"
        )
