"""``cmr models``: every model in the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
