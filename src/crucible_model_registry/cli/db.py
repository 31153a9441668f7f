"""``cmr init``, ``cmr db upgrade``, ``cmr db check`` and ``cmr db copy``: schemas set up, moved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.registry import Registry
    from crucible_model_registry.storage.base import StorageBackend

__all__ = ["app"]

app = typer.Typer()
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db", rich_help_panel="Setup")


def _migrate(registry: Registry) -> tuple[str | None, str]:
    from crucible_model_registry.store import schema
    from crucible_model_registry.store.engine import creating_database

    with creating_database():  # init and db upgrade may create a missing SQLite file
        before = schema.current_revision(registry.engine)
        if before != schema.HEAD_REVISION:
            registry.migrate()
    return before, schema.HEAD_REVISION


def _migration_report(url: str, before: str | None, after: str) -> dict[str, object]:
    return {"database_url": url, "revision_before": before, "revision": after}


def _say_migrated(console: Console, report: dict[str, object]) -> None:
    before, after = report["revision_before"], report["revision"]
    if before == after:
        console.print(f"Schema already at revision {after}: {report['database_url']}")
    elif before is None:
        console.print(f"Created the registry schema (revision {after}): {report['database_url']}")
    else:
        console.print(f"Migrated {report['database_url']} from revision {before} to {after}")


@app.command(rich_help_panel="Setup")
def init(json_flag: _session.JsonFlag = False) -> None:
    """Create or migrate the registry: the embedded default, or the configured database."""
    from crucible_model_registry.store.engine import redact_url

    session = _session.current()
    settings = session.settings()
    registry = session.registry()
    before, after = _migrate(registry)
    report = _migration_report(redact_url(settings.resolved_database_url), before, after)
    report["embedded"] = settings.is_embedded
    report["home"] = str(settings.home)
    report["storage_backend"] = settings.storage_backend
    if settings.storage_backend == "local":
        report["artifacts_path"] = settings.resolved_storage_options.get("base_path")

    def human(console: Console) -> None:
        _say_migrated(console, report)
        if settings.storage_backend == "local":
            console.print(f"Artifacts are stored on local disk under {report['artifacts_path']}")
        else:
            console.print(f"Artifacts go to the {settings.storage_backend!r} storage backend")

    _session.emit(report, json_flag=json_flag, human=human)


@db_app.command("upgrade")
def upgrade(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Database to migrate (default: --database-url, CMR_DATABASE_URL, "
            "else the embedded SQLite registry).",
            show_default=False,
        ),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Migrate a database's registry tables (and only those) to this release's schema."""
    from crucible_model_registry.registry import Registry
    from crucible_model_registry.store.engine import redact_url

    session = _session.current()
    if url is None:
        registry = session.registry()
        url = session.settings().resolved_database_url
        before, after = _migrate(registry)
    else:
        registry = Registry.from_url(url)
        try:
            before, after = _migrate(registry)
        finally:
            registry.close()
    report = _migration_report(redact_url(url), before, after)
    _session.emit(report, json_flag=json_flag, human=lambda c: _say_migrated(c, report))


@db_app.command("check")
def check(json_flag: _session.JsonFlag = False) -> None:
    """Verify the registry's invariants; exit 1 naming each violation (writes nothing).

    Checked: every version's stage is its last stage-history row; metrics and tags JSON
    equal their tables; no lineage edge, alias, upload claim or artifact points at a
    missing version; no model's version counter is behind its numbered versions.
    """
    from crucible_model_registry.domain.integrity import INVARIANTS

    report = _session.current().registry().check()
    data = {
        "ok": report.ok,
        "checked": list(INVARIANTS),
        "violations": [
            {"invariant": v.invariant, "subject": v.subject, "detail": v.detail}
            for v in report.violations
        ],
    }

    def human(console: Console) -> None:
        if report.ok:
            console.print(f"OK: all {len(INVARIANTS)} invariants hold ({', '.join(INVARIANTS)})")
            return
        for violation in report.violations:
            console.print(str(violation), markup=False)
        console.print(f"{len(report.violations)} violation(s) found")

    _session.emit(data, json_flag=json_flag, human=human, quiet=map(str, report.violations))
    if not report.ok:
        raise typer.Exit(code=1)


def _storage_option(flag: str, default_help: str) -> Any:
    return typer.Option(
        flag,
        help=f"Artifact storage backend (local, s3, huggingface, noop, a plugin) {default_help}.",
        show_default=False,
    )


@db_app.command("copy")
def copy(
    *,
    to_url: Annotated[
        str, typer.Option("--to", help="Database to copy into (migrated first if need be).")
    ],
    from_url: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Database to copy from (default: --database-url, CMR_DATABASE_URL, else the "
            "embedded SQLite registry).",
            show_default=False,
        ),
    ] = None,
    storage_from: Annotated[
        str | None, _storage_option("--storage-from", "where the source's bytes are")
    ] = None,
    storage_from_options: Annotated[
        str | None, typer.Option("--storage-from-options", help="JSON options of --storage-from.")
    ] = None,
    storage_to: Annotated[
        str | None,
        _storage_option("--storage-to", "to copy the artifact bytes into (else: references)"),
    ] = None,
    storage_to_options: Annotated[
        str | None, typer.Option("--storage-to-options", help="JSON options of --storage-to.")
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Only models matching this glob.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be copied; write nothing.")
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Copy a registry into another database (and storage), e.g. the embedded one to PostgreSQL.

    Streams model by model through the same code as `cmr export` / `cmr import`: idempotent,
    all or nothing per model, conflicts refused. With --storage-to, artifact bytes are copied
    and verified; without it, artifacts are recorded as references to where they are.
    """
    from crucible_model_registry.cli.move import progress_bar, say_report
    from crucible_model_registry.registry import Registry
    from crucible_model_registry.store.engine import redact_url

    session = _session.current()
    if from_url is None:
        source = session.registry()
        from_url = session.settings().resolved_database_url
        if storage_from is not None:
            source = Registry(source.engine, storage=_backend(storage_from, storage_from_options))
    else:
        source = Registry.from_url(
            from_url, storage=_backend(storage_from or "noop", storage_from_options)
        )
    target_storage = _backend(storage_to or "noop", storage_to_options)
    target = Registry.from_url(to_url, storage=target_storage)
    try:
        _migrate(target)
        with progress_bar("copy") as progress:
            report = source.copy_to(
                target,
                with_artifacts=storage_to is not None,
                models=models,
                dry_run=dry_run,
                progress=progress,
            )
    finally:
        target.close()
    say_report(
        report, json_flag=json_flag, what=f"{redact_url(from_url)} into {redact_url(to_url)}"
    )


def _backend(name: str, options: str | None) -> StorageBackend:
    import json

    from crucible_model_registry.errors import ConfigurationError
    from crucible_model_registry.storage.backends import create_backend

    try:
        parsed = json.loads(options) if options else {}
    except ValueError as exc:
        raise ConfigurationError(f"storage options must be a JSON object: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ConfigurationError("storage options must be a JSON object")
    return create_backend(name, parsed)
