"""``cmr models``: every model in the registry; ``cmr model create|rename|delete``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["app"]

app = typer.Typer()


@app.command(rich_help_panel="Versions")
def models(json_flag: _session.JsonFlag = False) -> None:
    """List every model, by name."""
    found = _session.current().registry().list_models()

    def human(console: Console) -> None:
        from crucible_model_registry.cli._render import models_table

        if not found:
            console.print("No models yet: register one with `cmr register` or try `cmr demo`.")
            return
        console.print(models_table(found))

    _session.emit(found, json_flag=json_flag, human=human, quiet=[m.name for m in found])


model_app = typer.Typer(help="Create, rename or delete a model.", no_args_is_help=True)
app.add_typer(model_app, name="model", rich_help_panel="Versions")

Name = Annotated[str, typer.Argument(help="Model name.")]


@model_app.command("create")
def create_model(
    name: Name,
    description: Annotated[str | None, typer.Option("--description", help="What it is.")] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Create a model without versions (`cmr register` creates one on first use too)."""
    m = _session.current().registry().create_model(name, description=description)
    _session.emit(
        m,
        json_flag=json_flag,
        human=lambda console: console.print(f"Created model {m.name} (id {m.id})", markup=False),
        quiet=[m.id],
    )


@model_app.command("rename")
def rename_model(
    name: Name,
    new_name: Annotated[str, typer.Argument(help="Its new name.")],
    json_flag: _session.JsonFlag = False,
) -> None:
    """Give a model another name; its versions, aliases, policy and histories go with it."""
    m = _session.current().registry().rename_model(name, new_name)
    _session.emit(
        m,
        json_flag=json_flag,
        human=lambda console: console.print(f"Renamed {name} to {m.name}", markup=False),
        quiet=[m.id],
    )


@model_app.command("delete")
def delete_model(
    name: Name,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete even when a version is in production or another model descends from it.",
        ),
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Delete a model with all its versions, aliases, policy and histories.

    The audit log keeps its entries. Stored artifact bytes are kept: `cmr artifact delete`
    first to delete them with it.
    """
    registry = _session.current().registry()
    m = registry.get_model(name)
    count = len(registry.query({"model_name": name}))
    registry.delete_model(name, force=force)
    _session.emit(
        {"deleted": m.id, "name": m.name, "versions": count},
        json_flag=json_flag,
        human=lambda console: console.print(
            f"Deleted model {m.name} (id {m.id}) and its {count} version(s)", markup=False
        ),
        quiet=[m.id],
    )
