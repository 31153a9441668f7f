"""``cmr token create|list|revoke``: API tokens for a registry server (an admin's job)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.registry import Registry

__all__ = ["app"]

app = typer.Typer()
token_app = typer.Typer(
    help="API tokens: who may read, write, promote or administer which models.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token", rich_help_panel="Governance")

Name = Annotated[str, typer.Argument(help="The token's name: the actor in every history.")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Work on this database directly (how the first admin token is made); "
        "the same as the global option.",
    ),
]


def _registry(database_url: str | None) -> Registry:
    session = _session.current()
    if database_url is not None:
        session.database_url = database_url
    return session.registry()


@token_app.command("create")
def create(
    name: Name,
    *,
    role: Annotated[
        str,
        typer.Option(help="read, write, promote or admin (each includes the ones before it)."),
    ],
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help="A model-name pattern the role applies to (* and ?); repeat for more. "
            "Default: every model.",
        ),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime such as 90d, 12h, 2w. Default: never."),
    ] = None,
    database_url: DatabaseUrl = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Create a token and print it once: store it now, it cannot be shown again.

    Works on the database (--database-url: how the first admin token is made) or on a
    server (--server with an admin token).
    """
    created = _registry(database_url).create_token(
        name, role=role, models=models or None, expires_in=expires_in
    )

    def human(console: Console) -> None:
        from rich.text import Text

        scope = ", ".join(created.models) or "every model"
        until = created.expires_at.isoformat() if created.expires_at else "never"
        console.print(
            Text(f"token {created.name!r}: {created.role.value} on {scope}, expires {until}")
        )
        console.print(Text(created.token, style="bold"))
        console.print(Text("shown only now: store it (e.g. as CMR_TOKEN) before you go on"))

    doc = {
        "name": created.name,
        "token": created.token,
        "role": created.role.value,
        "models": created.models,
        "expires_at": created.expires_at,
    }
    _session.emit(doc, json_flag=json_flag, human=human, quiet=[created.token])


@token_app.command("list")
def list_(database_url: DatabaseUrl = None, json_flag: _session.JsonFlag = False) -> None:
    """List the tokens (never their secrets): role, models, expiry, last use."""
    tokens = _registry(database_url).list_tokens()

    def human(console: Console) -> None:
        from rich.table import Table

        table = Table("name", "role", "models", "expires", "last used", "created by")
        for t in tokens:
            table.add_row(
                t.name,
                t.role.value,
                ", ".join(t.models) or "*",
                t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never",
                t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never",
                t.created_by or "",
            )
        console.print(table)

    _session.emit(tokens, json_flag=json_flag, human=human, quiet=[t.name for t in tokens])


@token_app.command("revoke")
def revoke(
    name: Name, database_url: DatabaseUrl = None, json_flag: _session.JsonFlag = False
) -> None:
    """Revoke a token: a server refuses it within its cache window (5 s by default)."""
    _registry(database_url).revoke_token(name)

    def human(console: Console) -> None:
        from rich.text import Text

        console.print(Text(f"token {name!r} revoked"))

    _session.emit({"revoked": name}, json_flag=json_flag, human=human)
