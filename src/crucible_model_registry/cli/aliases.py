"""``cmr alias set|delete|history``: named pointers to versions, and their recorded moves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["app"]

app = typer.Typer()
alias_app = typer.Typer(help="Point aliases (model@champion) at versions.", no_args_is_help=True)
app.add_typer(alias_app, name="alias", rich_help_panel="Governance")

Alias = Annotated[str, typer.Argument(help="Alias name, e.g. champion.")]
Model = Annotated[str, typer.Argument(help="Model name.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why, for the alias history.")]


@alias_app.command("set")
def set_alias(
    ref: Annotated[
        str, typer.Argument(help="Version: id, model@version, model@stage, model@latest or alias.")
    ],
    alias: Alias,
    reason: Reason = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Point an alias of the version's model at the version (moving it if it exists)."""
    v = _session.current().registry().set_alias(ref, alias, reason=reason)
    _session.emit(
        v,
        json_flag=json_flag,
        human=lambda console: console.print(
            f"{v.model_name}@{alias} -> {v.ref} (id {v.id})", markup=False
        ),
        quiet=[v.id],
    )


@alias_app.command("delete")
def delete_alias(
    model: Model, alias: Alias, reason: Reason = None, json_flag: _session.JsonFlag = False
) -> None:
    """Remove an alias of a model (the removal stays in the alias history)."""
    _session.current().registry().delete_alias(model, alias, reason=reason)
    _session.emit(
        {"model": model, "alias": alias, "deleted": True},
        json_flag=json_flag,
        human=lambda console: console.print(f"Deleted {model}@{alias}", markup=False),
    )


@alias_app.command("history")
def alias_history(model: Model, json_flag: _session.JsonFlag = False) -> None:
    """Every move and removal of the model's aliases, oldest first."""
    registry = _session.current().registry()
    changes = registry.alias_history(model)
    ids = sorted({c.version_id for c in changes if c.version_id is not None})
    refs = {}
    for version_id in ids:
        try:
            refs[version_id] = registry.get_version(version_id).ref
        except LookupError:  # deleted since: the history keeps its id
            refs[version_id] = f"{version_id} (deleted)"

    def human(console: Console) -> None:
        from crucible_model_registry.cli._render import alias_history_table

        if not changes:
            console.print(f"{model} has no alias history", markup=False)
            return
        console.print(alias_history_table(changes, refs=refs, title=f"aliases of {model}"))

    _session.emit(changes, json_flag=json_flag, human=human)
