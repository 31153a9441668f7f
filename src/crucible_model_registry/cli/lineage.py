"""``cmr lineage``: a version's ancestors and descendants as a tree, DOT, Mermaid or JSON."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from crucible_model_registry.domain.lineage import Direction

__all__ = ["app"]

app = typer.Typer()


class LineageFormat(StrEnum):
    """How ``cmr lineage`` draws the graph."""

    TREE = "tree"
    DOT = "dot"
    MERMAID = "mermaid"
    JSON = "json"


@app.command(
    rich_help_panel="Queries and lineage",
    epilog="Example: cmr lineage llama-dpo@production --up --format mermaid > lineage.md",
)
def lineage(
    ref: Annotated[
        str,
        typer.Argument(help="Version: id, model@version, model@stage, model@latest or alias."),
    ],
    *,
    up: Annotated[bool, typer.Option("--up", help="Ancestors only.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Descendants only.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Ancestors and descendants.")] = False,
    depth: Annotated[
        int | None,
        typer.Option("--depth", min=1, help="Follow at most N edges each way (default: all)."),
    ] = None,
    fmt: Annotated[
        LineageFormat,
        typer.Option(
            "--format",
            "-f",
            help="tree for people, dot for Graphviz, mermaid for Markdown, json for scripts.",
            case_sensitive=False,
        ),
    ] = LineageFormat.TREE,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Draw a version's lineage: what it was made from, and what was made from it."""
    if up + down + both > 1:
        raise typer.BadParameter("give at most one of --up, --down, --both", param_hint="--up")
    direction: Direction = "up" if up else "down" if down else "both"
    graph = _session.current().registry().get_lineage(ref, direction=direction, max_depth=depth)
    if _session.current().wants_json(json_flag) or fmt is LineageFormat.JSON:
        _session.print_json(graph.to_dict())
    elif fmt is LineageFormat.DOT:
        sys.stdout.write(graph.to_dot())
    elif fmt is LineageFormat.MERMAID:
        sys.stdout.write(graph.to_mermaid())
    elif not _session.current().quiet:
        sys.stdout.write(graph.to_tree(direction))
