"""``cmr audit``: the audit log, newest first, filtered by time, actor and action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _parse, _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.domain.audit import AuditEntry

__all__ = ["app"]

app = typer.Typer()


@app.command("audit", rich_help_panel="Governance")
def audit(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries at or after this ISO 8601 time (UTC if bare)."),
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this actor's entries.")] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Only this action: register, promote, set_alias, ..."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="The most entries shown (1 to 10000).")
    ] = 100,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Show the audit log: every write, through the library or a server, newest first."""
    moment = None if since is None else _parse.parse_time(since, option="--since")
    entries = (
        _session.current()
        .registry()
        .audit_log(since=moment, actor=actor, action=action, limit=limit)
    )
    _session.emit(
        entries,
        json_flag=json_flag,
        human=lambda console: _table(console, entries),
        quiet=[e.id for e in entries],
    )


def _table(console: Console, entries: list[AuditEntry]) -> None:
    from rich.text import Text

    from crucible_model_registry.cli._render import fmt_time, fmt_value, plain_table

    if not entries:
        console.print(Text("no audit entries match"))
        return
    table = plain_table(
        "at", "actor", "action", "target", "details", "request", no_wrap=("at", "action")
    )
    for e in entries:
        action = Text(e.action, style="bold red" if e.outcome == "denied" else "bold")
        if e.outcome == "denied":
            action.append(" (denied)")
        details = ", ".join(f"{k}={fmt_value(v)}" for k, v in e.details.items())
        table.add_row(
            fmt_time(e.at), Text(e.actor), action, Text(e.target), Text(details), e.request_id or ""
        )
    console.print(table)
