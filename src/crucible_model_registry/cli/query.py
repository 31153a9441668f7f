"""``cmr query`` (and ``cmr list``): versions filtered by stage, recipe, metrics, tags, lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.query import Query

__all__ = ["app"]

app = typer.Typer()
PANEL = "Queries and lineage"
ORDER_FIELDS = ("created_at", "updated_at", "version", "model_name", "stage", "id")


def _complete_order(incomplete: str) -> list[str]:
    return [f for f in (*ORDER_FIELDS, "metric:") if f.startswith(incomplete)]


def _build(
    query: Query,
    *,
    stage: list[str],
    recipe: str | None,
    base_model: str | None,
    model: str | None,
    tag: list[str],
    metric: list[str],
    descendant_of: str | None,
    ancestor_of: str | None,
    order_by: str | None,
    desc: bool,
    limit: int | None,
) -> Query:
    from crucible_model_registry.domain.query_filters import parse_metric_condition

    if stage:
        query = query.where_stage(stage)
    if recipe is not None:
        query = query.where_recipe(recipe)
    if base_model is not None:
        query = query.where_base_model(base_model)
    if model is not None:
        query = query.where_model_name(model)
    for name in tag:
        query = query.where_tag(name)
    for text in metric:
        condition = parse_metric_condition(text)
        query = query.where_metric(condition.name, condition.op, condition.value)
    if descendant_of is not None:
        query = query.where_descendant_of(descendant_of)
    if ancestor_of is not None:
        query = query.where_ancestor_of(ancestor_of)
    direction = "desc" if desc else "asc"
    if order_by is not None:
        kind, sep, metric_name = order_by.partition(":")
        if sep and kind == "metric":
            query = query.order_by_metric(metric_name, direction)
        else:
            query = query.order_by(order_by, direction)
    elif desc:
        query = query.order_by("id", "desc")
    if limit is not None:
        query = query.limit(limit)
    return query


def query(
    *,
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", "-s", help="In this stage; repeat for any of several."),
    ] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="Trained with it.")] = None,
    base_model: Annotated[
        str | None, typer.Option("--base-model", "-b", help="Trained from it.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Versions of it.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="The version or its model has it; repeat for all of."),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="Condition such as 'accuracy>=0.9' or 'loss<0.5' (ops > >= < <= == !=); "
            "repeat for all of them.",
        ),
    ] = None,
    descendant_of: Annotated[
        str | None, typer.Option("--descendant-of", help="Made from this version ref.")
    ] = None,
    ancestor_of: Annotated[
        str | None, typer.Option("--ancestor-of", help="This version ref was made from it.")
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option(
            "--order-by",
            help="created_at, updated_at, version, model_name, stage, id, or metric:NAME "
            "(default: id).",
            autocompletion=_complete_order,
        ),
    ] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Descending order.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=0, help="At most N.")] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Find versions: all filters combine with AND; a version lacking a metric never matches it."""
    from crucible_model_registry.query import Query

    registry = _session.current().registry()
    built = _build(
        Query(registry),
        stage=stage or [],
        recipe=recipe,
        base_model=base_model,
        model=model,
        tag=tag or [],
        metric=metric or [],
        descendant_of=descendant_of,
        ancestor_of=ancestor_of,
        order_by=order_by,
        desc=desc,
        limit=limit,
    )
    found = built.execute()

    def human(console: Console) -> None:
        from crucible_model_registry.cli._render import versions_table

        if not found:
            console.print("No versions match.")
            return
        console.print(versions_table(found, width=console.width))

    _session.emit(found, json_flag=json_flag, human=human, quiet=[v.id for v in found])


_EXAMPLE = (
    "Example: cmr query --stage production --recipe sft --metric 'accuracy>=0.9' "
    "--order-by metric:accuracy --desc --limit 5"
)
app.command("query", rich_help_panel=PANEL, epilog=_EXAMPLE)(query)
app.command(
    "list",
    rich_help_panel=PANEL,
    help="Same as query: find versions by stage, recipe, metrics, tags, lineage.",
    epilog=_EXAMPLE,
)(query)
