"""``cmr export`` and ``cmr import`` (an export directory, or ``cmr import hf`` from the Hub).

``cmr import`` is a command group whose default command takes the export directory, so that
``cmr import ./backup``, ``cmr import hf org/model`` (and later importers such as
``cmr import mlflow``) all work: an argument that names no subcommand is the export.
A directory called like a subcommand is reached as ``cmr import ./hf``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.domain.exchange import ImportReport
    from crucible_model_registry.domain.mlflow import MlflowImportReport

__all__ = ["app", "progress_bar", "say_report"]

PANEL = "Move and back up"
_DEFAULT = "export-dir"


class _ImportGroup(TyperGroup):
    """A group whose first argument, unless it names a subcommand, is an export directory."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        helping = any(a in ctx.help_option_names for a in args)
        if args and first not in self.commands and not (helping and first is None):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Any) -> list[str]:
        return [name for name in super().list_commands(ctx) if name != _DEFAULT]


app = typer.Typer()
import_app = typer.Typer(
    cls=_ImportGroup,
    help="Import an export directory: `cmr import SRC [--dry-run] [--json]` (idempotent, all "
    "or nothing per model, conflicts refused); or models from elsewhere: `cmr import hf`, "
    "`cmr import mlflow`.",
    no_args_is_help=True,
)
app.add_typer(
    import_app, name="import", rich_help_panel=PANEL, subcommand_metavar="SRC | COMMAND [ARGS]..."
)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Any]:
    """A versions-done progress bar on stderr (nothing when quiet or not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if _session.current().quiet or not console.is_terminal:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("versions"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def say_report(report: ImportReport | MlflowImportReport, *, json_flag: bool, what: str) -> None:
    """Print an import report (a table, or JSON); exit 1 when anything was refused."""

    def human(console: Console) -> None:
        from rich.table import Table

        verb = "Would import" if report.dry_run else "Imported"
        if not report.changed and not report.refused:
            console.print(f"Nothing to import: everything in {what} is here already.")
        else:
            console.print(f"{verb} {what}:")
        table = Table("kind", "imported", "skipped", "conflicts", box=None)
        for kind in report.imported:
            counts = (report.imported[kind], report.skipped[kind], report.conflicts[kind])
            if any(counts):
                table.add_row(kind, *(str(n) for n in counts))
        console.print(table)
        if any(report.skipped.values()):
            console.print("skipped: in this registry already, with the same content")
        for conflict in report.refused:
            console.print(f"refused {conflict.kind} {conflict.ref}: {conflict.reason}")
        if report.refused_models:
            console.print("models not imported: " + ", ".join(report.refused_models))
        for item in getattr(report, "unmapped", []):
            console.print(f"could not map {item.kind} {item.ref}: {item.reason}")

    _session.emit(report, json_flag=json_flag, human=human)
    if report.refused:
        sys.stderr.write(
            f"error: {len(report.refused)} item(s) refused; nothing of a refused model was "
            "written (see the report)\n"
        )
        raise typer.Exit(1)


@app.command("export", rich_help_panel=PANEL)
def export(
    dest: Annotated[Path, typer.Argument(help="A new directory to write the export to.")],
    with_artifacts: Annotated[
        bool, typer.Option("--with-artifacts", help="Also copy the artifact bytes.")
    ] = False,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Only models whose name matches this glob ('llama-*')."),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Write the registry to a directory of JSON Lines files with a checksummed manifest."""
    registry = _session.current().registry()
    with progress_bar("export") as progress:
        result = registry.export_to(
            dest, with_artifacts=with_artifacts, models=models, progress=progress
        )

    def human(console: Console) -> None:
        counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items() if n)
        console.print(f"Exported to {result.path}: {counts or 'nothing'}")
        if with_artifacts:
            console.print(f"Artifact bytes: {result.artifact_bytes}")

    _session.emit(result, json_flag=json_flag, human=human, quiet=[result.path])


@import_app.command(_DEFAULT, hidden=True)
def import_export(
    src: Annotated[Path, typer.Argument(help="An export directory (from `cmr export`).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be imported; write nothing.")
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Import an export directory: idempotent, all or nothing per model, conflicts refused."""
    registry = _session.current().registry()
    with progress_bar("import") as progress:
        report = registry.import_from(src, dry_run=dry_run, progress=progress)
    say_report(report, json_flag=json_flag, what=str(src))


@import_app.command("hf")
def import_hf(
    repo_ids: Annotated[list[str], typer.Argument(help="Hub repositories (org/name).")],
    *,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch, tag or commit (default: main).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="HF_TOKEN", help="Hub token (default: HF_TOKEN).", show_default=False
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            envvar="HF_ENDPOINT",
            help="Hub URL (default: HF_ENDPOINT, else huggingface.co).",
        ),
    ] = None,
    copy_artifacts: Annotated[
        bool,
        typer.Option(
            "--copy-artifacts",
            help="Copy the repository's files into the registry's storage (verified); "
            "by default they are recorded by reference.",
        ),
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Register Hub models from their model cards: base model lineage, metrics, tags, license."""
    registry = _session.current().registry()
    versions = [
        registry.import_hf(
            repo_id,
            revision=revision,
            token=token,
            endpoint=endpoint,
            copy_artifacts=copy_artifacts,
        )
        for repo_id in repo_ids
    ]

    def human(console: Console) -> None:
        for v in versions:
            parents = registry.get_ancestors(v, max_depth=1)
            lineage = f" (from {', '.join(p.ref for p in parents)})" if parents else ""
            console.print(
                f"Registered {v.ref}{lineage}: {len(v.metrics)} metrics, "
                f"{len(v.artifacts)} artifacts"
            )

    _session.emit(versions, json_flag=json_flag, human=human, quiet=[v.id for v in versions])


@import_app.command("mlflow")
def import_mlflow(
    uri: Annotated[
        str,
        typer.Option(
            "--from",
            help="The MLflow registry: its database URL (sqlite:///mlflow.db, "
            "postgresql://user@host/db) or tracking server (http://host:5000).",
            show_default=False,
        ),
    ],
    *,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Only MLflow models whose name matches this glob."),
    ] = None,
    copy_artifacts: Annotated[
        bool,
        typer.Option(
            "--copy-artifacts",
            help="Copy each version's files into the registry's storage (SHA-256 on the "
            "way); by default only their MLflow source URI is kept.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be imported; write nothing.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--mlflow-token",
            envvar="MLFLOW_TRACKING_TOKEN",
            help="Bearer token for an MLflow server (default: MLFLOW_TRACKING_TOKEN).",
            show_default=False,
        ),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Bring an MLflow model registry over: idempotent, resumable, one model at a time."""
    registry = _session.current().registry()
    with progress_bar("import mlflow") as progress:
        report = registry.import_mlflow(
            uri,
            models=models,
            copy_artifacts=copy_artifacts,
            dry_run=dry_run,
            token=token,
            progress=progress,
        )
    say_report(report, json_flag=json_flag, what=report.source)
