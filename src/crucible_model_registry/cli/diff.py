"""``cmr diff A B``: how two versions differ (config, metrics, stage, tags, artifacts, lineage)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from crucible_model_registry.domain.diff import VersionDiff

__all__ = ["app"]

app = typer.Typer()

Ref = Annotated[
    str,
    typer.Argument(help="Version: id, model@version, model@stage, model@latest or model@alias."),
]


@app.command(
    rich_help_panel="Versions",
    epilog="Example: cmr diff llama-sft@1 llama-sft@production  (--json: "
    "jq '.config.changed' for the changed config keys)",
)
def diff(left: Ref, right: Ref, json_flag: _session.JsonFlag = False) -> None:
    """Compare two versions: config keys, metrics with deltas, stage, tags, artifacts, lineage."""
    result = _session.current().registry().diff(left, right)
    _session.emit(
        result,
        json_flag=json_flag,
        human=lambda console: _draw(console, result),
        quiet=[result.left_id, result.right_id],
    )


def describe_relation(d: VersionDiff) -> str:
    """One sentence: how the left version relates to the right one in lineage."""
    relation, a, b = d.lineage, d.left_ref, d.right_ref
    edges = "edge" if relation.depth == 1 else "edges"
    shared = ", ".join(relation.shared_refs)
    match relation.kind:
        case "same":
            return f"{a} and {b} are the same version"
        case "ancestor":
            return f"{b} descends from {a} ({relation.depth} {edges} down)"
        case "descendant":
            return f"{a} descends from {b} ({relation.depth} {edges} down)"
        case "siblings":
            return f"siblings: both made from {shared}"
        case "common_ancestor":
            return f"cousins: both descend from {shared} (up to {relation.depth} {edges} up)"
        case _:
            return "unrelated: no shared ancestor"


def _draw(console: Console, d: VersionDiff) -> None:
    from rich.text import Text

    from crucible_model_registry.cli._render import stage_text

    head = Text("diff ").append(d.left_ref, style="bold").append(f" (id {d.left_id}) → ")
    console.print(head.append(d.right_ref, style="bold").append(f" (id {d.right_id})"))
    console.print(Text(f"lineage: {describe_relation(d)}"))
    if d.left_stage is d.right_stage:
        console.print(Text("stage: both ").append(stage_text(d.left_stage)))
    else:
        line = Text("stage: ").append(stage_text(d.left_stage)).append(" → ")
        console.print(line.append(stage_text(d.right_stage)))
    if d.tags_only_left or d.tags_only_right:
        console.print(
            Text(
                f"tags: only in {d.left_ref}: {', '.join(d.tags_only_left) or '-'}; "
                f"only in {d.right_ref}: {', '.join(d.tags_only_right) or '-'}"
            )
        )
    else:
        console.print(Text("tags: the same", style="dim"))
    for part in (_config_part(d), _metrics_part(d), _artifacts_part(d)):
        console.print()
        console.print(part)


def _config_part(d: VersionDiff) -> RenderableType:
    from rich.text import Text

    from crucible_model_registry.cli._render import Folded, fmt_value, plain_table

    if d.config.is_empty:
        return Text("training config: the same", style="dim")
    table = _with_sides(plain_table("", "key", title="training config"), d)
    for change in d.config.changed:
        table.add_row(
            Text("~", style="yellow"),
            Folded(change.path),
            Text(fmt_value(change.left)),
            Text(fmt_value(change.right)),
        )
    for path, value in d.config.added.items():
        table.add_row(Text("+", style="green"), Folded(path), Text(""), Text(fmt_value(value)))
    for path, value in d.config.removed.items():
        table.add_row(Text("-", style="red"), Folded(path), Text(fmt_value(value)), Text(""))
    return table


def _with_sides(table: Table, d: VersionDiff, *after: str) -> Table:
    """Add a column per side, headed by its ref (wrapping at separators), then ``after``."""
    from crucible_model_registry.cli._render import Folded

    left_version = d.left_ref.rpartition("@")[2]
    right_version = d.right_ref.rpartition("@")[2]
    table.add_column(Folded(d.left_ref, keep=left_version))
    table.add_column(Folded(d.right_ref, keep=right_version))
    for header in after:
        table.add_column(header)
    return table


def _metrics_part(d: VersionDiff) -> RenderableType:
    from rich.text import Text

    from crucible_model_registry.cli._render import Folded, fmt_number, plain_table

    if not d.metrics:
        return Text("metrics: none on either side", style="dim")
    table = _with_sides(plain_table("metric", title="metrics"), d, "delta")
    for m in d.metrics:
        delta = Text("")
        if m.delta is not None:
            style = "green" if m.delta > 0 else "red" if m.delta < 0 else "dim"
            delta = Text(f"{m.delta:+.6g}", style=style)
        table.add_row(
            Folded(m.name),
            Text("-" if m.left is None else fmt_number(m.left)),
            Text("-" if m.right is None else fmt_number(m.right)),
            delta,
        )
    return table


def _artifacts_part(d: VersionDiff) -> RenderableType:
    from rich.text import Text

    from crucible_model_registry.cli._render import fmt_size, plain_table

    if not d.artifacts:
        return Text("artifacts: none on either side", style="dim")
    table = _with_sides(plain_table("type", title="artifacts"), d, "bytes")
    for row in d.artifacts:
        sides = [
            ", ".join(f"id {a.id} ({fmt_size(a.size_bytes) or '?'})" for a in side) or "-"
            for side in (row.left, row.right)
        ]
        table.add_row(Text(row.type), Text(sides[0]), Text(sides[1]), Text(row.status))
    return table
