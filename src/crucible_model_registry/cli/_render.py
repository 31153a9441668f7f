"""Rich tables and panels that show registry records to people."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from crucible_model_registry.domain.records import (
    AliasChange,
    Artifact,
    Model,
    ModelVersion,
    StageTransition,
)

__all__ = [
    "STAGE_STYLES",
    "Folded",
    "alias_history_table",
    "artifacts_table",
    "flatten",
    "fmt_metrics",
    "fmt_size",
    "fmt_time",
    "fmt_value",
    "history_table",
    "mapping_table",
    "models_table",
    "plain_table",
    "stage_text",
    "version_detail",
    "versions_table",
]

STAGE_STYLES = {
    "experiment": "cyan",
    "staging": "yellow",
    "production": "bold green",
    "archived": "dim",
}


# Break after a separator: / - _ , : = @ or a space, or a dot that is not inside a number
# (so that "accuracy=0.91" and "1.0.0" never split at their dots).
_BREAK_AFTER = re.compile(r"(?<=[/\-_,:=@ ])|(?<=\.)(?!\d)")


class Folded:
    """Text that wraps at separators (``pretrained-`` / ``embeddings``), never mid-word.

    Rich wraps only at spaces and folds longer words wherever the column ends, which cut
    names such as ``sentence-transformers-pretrained`` into ``pretra`` / ``ined``. A
    piece that ``keep`` names (a version string, say) is never split; a piece wider than
    the whole column (a last resort) ends in an ellipsis, never in a fragment of a word.
    """

    def __init__(self, text: str, style: str = "", *, keep: str = "") -> None:
        self.text = text
        self.style = style
        self.keep = keep
        head = text[: len(text) - len(keep)] if keep and text.endswith(keep) else text
        self.pieces = [p for p in _BREAK_AFTER.split(head) if p]
        if head != text:
            self.pieces.append(keep)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((cell_len(p.rstrip()) for p in self.pieces), default=0)
        return Measurement(widest, cell_len(self.text)).clamp(max_width=options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        width = max(options.max_width, 1)
        lines: list[str] = []
        line = ""
        for whole in self.pieces:
            piece = whole
            if cell_len(whole.rstrip()) > width and whole != self.keep:
                piece = whole.rstrip()[: width - 1] + "…"
            if line and cell_len((line + piece).rstrip()) > width:
                lines.append(line.rstrip())
                line = piece.lstrip()
            else:
                line += piece
        lines.append(line.rstrip())
        yield Text("\n".join(lines), style=self.style, overflow="fold")


class _FittingTable(Table):
    """A table that shrinks its widest wrapping column first, never below its longest word.

    Rich's own narrowing ignores what a cell can wrap to, so at 80 columns it folded
    ``pretrained`` into ``pretra`` / ``ined`` and hid whole columns. Here each wrapping
    column keeps room for its longest unbreakable piece (a word, a :class:`Folded` piece,
    a version string). When even that cannot fit, the columns not named in ``firm`` give
    way further (folding inside words) so that ids, stages and versions stay whole.
    """

    firm: frozenset[str] = frozenset()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        self._fit(console, options, options.max_width if self.width is None else self.width)
        yield from super().__rich_console__(console, options)

    def _fit(self, console: Console, options: ConsoleOptions, width: int) -> None:
        lows: list[int] = []
        highs: list[int] = []
        for column in self.columns:
            column.width = None  # fit afresh on every render
            sizes = [Measurement.get(console, options, c) for c in (column.header, *column.cells)]
            high = max(m.maximum for m in sizes)
            low = high if column.no_wrap else max(m.minimum for m in sizes)
            lows.append(min(max(low, column.min_width or 0), high))
            highs.append(high)
        padding = sum(self._get_padding_width(i) for i in range(len(self.columns)))
        available = width - self._extra_width - padding
        widths = _shrink_widest_first(lows, highs, available)
        if sum(widths) > available:  # last resort: words fold, but never in firm columns
            floors = [
                low if column.no_wrap or column.header in self.firm else min(low, _FLOOR)
                for column, low in zip(self.columns, lows, strict=True)
            ]
            widths = _shrink_widest_first(floors, widths, available)
        for column, fitted in zip(self.columns, widths, strict=True):
            if not column.no_wrap:
                column.width = fitted


_FLOOR = 4  # the narrowest a column gets, however little room there is


def _shrink_widest_first(lows: list[int], highs: list[int], available: int) -> list[int]:
    widths = list(highs)
    excess = sum(widths) - available
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > lows[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def fmt_time(value: datetime | None) -> str:
    """A UTC time to the second, as people read it."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_number(value: float) -> str:
    """A metric value: up to six significant digits, no float noise."""
    return f"{value:.6g}"


def fmt_metrics(metrics: Mapping[str, float]) -> str:
    """``accuracy=0.91 loss=1.2``, sorted by name."""
    return " ".join(f"{name}={fmt_number(value)}" for name, value in sorted(metrics.items()))


def fmt_size(size: int | None) -> str:
    """Bytes in binary units (``1.5 MiB``)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def stage_text(stage: object) -> Text:
    """A stage name in its colour."""
    name = str(getattr(stage, "value", stage)) if stage is not None else "-"
    return Text(name, style=STAGE_STYLES.get(name, ""))


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``(dotted.key, value)`` pairs, in key order."""
    pairs: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            pairs.extend(flatten(value, f"{dotted}."))
        else:
            pairs.append((dotted, value))
    return pairs


def fmt_value(value: Any) -> str:
    """A config value as people read it: strings bare, numbers short, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return fmt_number(value)
    return json.dumps(value, default=str)


def plain_table(*columns: str, title: str | None = None, no_wrap: Iterable[str] = ()) -> Table:
    """A borderless table in the house style; long cells fold, ``no_wrap`` columns stay whole."""
    return _table(*columns, title=title, no_wrap=no_wrap)


def _table(
    *columns: str,
    title: str | None = None,
    no_wrap: Iterable[str] = (),
    firm: Iterable[str] = (),
) -> Table:
    table = _FittingTable(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
        title_style="bold",
    )
    table.firm = frozenset(firm)
    keep_whole = set(no_wrap)
    for column in columns:
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column in keep_whole,
            min_width=_MIN_WIDTHS.get(column),
        )
    return table


# Free-text columns keep room for a word or two when the fixed columns take the rest.
_MIN_WIDTHS = {"actor": 5, "reason": 10, "description": 10, "path": 12, "tags": 4}


def versions_table(
    versions: Sequence[ModelVersion], *, title: str | None = None, width: int = 80
) -> Table:
    """One row per version: id, ref, stage, recipe, metrics, tags; wider terminals get more.

    ``base model`` appears from 110 columns on and ``created`` from 130. Long cells wrap
    at separators (:class:`Folded`); ids, stages and version strings stay whole.
    """
    table = _table(title=title, firm=("version",))
    for column in ("id", "version", "stage"):
        table.add_column(column, no_wrap=column != "version")
    table.add_column("recipe")
    if width >= 110:
        table.add_column("base model")
    table.add_column("metrics")
    table.add_column("tags")
    if width >= 130:
        table.add_column("created", no_wrap=True)
    for v in versions:
        cells: list[RenderableType] = [
            str(v.id),
            Folded(v.ref, style="bold", keep=v.version),
            stage_text(v.stage),
            Folded(v.recipe),
        ]
        if width >= 110:
            cells.append(Folded(v.base_model))
        cells += [
            Group(*(Folded(fmt_metrics({k: x})) for k, x in sorted(v.metrics.items()))),
            Folded(", ".join(v.tags)),
        ]
        if width >= 130:
            cells.append(fmt_time(v.created_at)[:16])
        table.add_row(*cells)
    return table


def models_table(models: Sequence[Model]) -> Table:
    """One row per model: name, tags, description, created."""
    table = _table("id", "model", "tags", "description", "created", no_wrap=("id", "created"))
    for m in models:
        table.add_row(
            str(m.id),
            Folded(m.name, style="bold"),
            Folded(", ".join(m.tags)),
            Text(m.description or ""),
            fmt_time(m.created_at),
        )
    return table


def mapping_table(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> Table:
    """Two columns, name and value."""
    table = _table("name", "value", title=title)
    for name, value in pairs:
        table.add_row(Folded(name), Text(fmt_value(value)))
    return table


def artifacts_table(artifacts: Sequence[Artifact], *, title: str | None = None) -> Table:
    """One row per artifact: id, type, backend, path, size, checksum prefix."""
    table = _table(
        "id", "type", "backend", "path", "size", "sha256", title=title, no_wrap=("id", "size")
    )
    for a in artifacts:
        table.add_row(
            str(a.id),
            a.type.value,
            Text(a.storage_backend),
            Folded(a.storage_path),
            fmt_size(a.size_bytes),
            (a.checksum or "")[:12],
        )
    return table


def history_table(
    transitions: Sequence[StageTransition],
    *,
    refs: Mapping[int, str] | None = None,
    title: str | None = None,
) -> Table:
    """Stage changes, oldest first: when, (version), from, to, actor, reason."""
    columns = ["at", *(["version"] if refs is not None else []), "change", "actor", "reason"]
    table = _table(*columns, title=title, no_wrap=("at", "version", "change"))
    for t in transitions:
        # With the version column too, minutes keep the table within 80 columns.
        cells: list[RenderableType] = [fmt_time(t.at)[: 16 if refs is not None else 19]]
        if refs is not None:
            cells.append(Text(refs.get(t.version_id, str(t.version_id))))
        change = Text("(new)", style="dim") if t.from_stage is None else stage_text(t.from_stage)
        cells += [
            change.append(" → ", style="").append(stage_text(t.to_stage)),
            Text(t.actor or ""),
            Text(t.reason or ""),
        ]
        table.add_row(*cells)
    return table


def alias_history_table(
    changes: Sequence[AliasChange], *, refs: Mapping[int, str], title: str | None = None
) -> Table:
    """Alias moves, oldest first: when, alias, version (or deleted), actor, reason."""
    table = _table(
        "at", "alias", "version", "actor", "reason", title=title, no_wrap=("at", "version")
    )
    for c in changes:
        target = (
            Text(refs.get(c.version_id, str(c.version_id)))
            if c.version_id is not None
            else Text("(deleted)", style="dim")
        )
        table.add_row(
            fmt_time(c.at),
            Text(c.alias, style="bold"),
            target,
            Text(c.actor or ""),
            Text(c.reason or ""),
        )
    return table


def version_detail(
    console: Console,
    v: ModelVersion,
    *,
    history: Sequence[StageTransition],
    parents: Sequence[tuple[ModelVersion, str]],
    children: Sequence[tuple[ModelVersion, str]],
) -> None:
    """Everything about one version: summary, metrics, config, artifacts, lineage, history."""
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column(overflow="fold")
    summary.add_row("id", str(v.id))
    summary.add_row("stage", stage_text(v.stage))
    summary.add_row("recipe", Text(v.recipe))
    summary.add_row("base model", Text(v.base_model))
    summary.add_row("config hash", v.config_hash)
    summary.add_row("tags", Text(", ".join(v.tags) or "-"))
    if v.description:
        summary.add_row("description", Text(v.description))
    summary.add_row("created", fmt_time(v.created_at))
    summary.add_row("registered by", Text(v.registered_by or "(not recorded)"))
    summary.add_row("updated", fmt_time(v.updated_at))
    console.print(Panel(summary, title=Text(v.ref, style="bold"), title_align="left"))

    parts: list[RenderableType] = []
    parts.append(
        mapping_table(sorted(v.metrics.items()), title="metrics")
        if v.metrics
        else Text("metrics: none", style="dim")
    )
    parts.append(
        mapping_table(flatten(v.training_config), title="training config")
        if v.training_config
        else Text("training config: {}", style="dim")
    )
    parts.append(
        artifacts_table(v.artifacts, title="artifacts")
        if v.artifacts
        else Text("artifacts: none", style="dim")
    )
    parts.append(_lineage_summary(parents, children))
    parts.append(history_table(history, title="stage history"))
    for part in parts:
        console.print()
        console.print(part)


def _lineage_summary(
    parents: Sequence[tuple[ModelVersion, str]], children: Sequence[tuple[ModelVersion, str]]
) -> RenderableType:
    if not parents and not children:
        return Text("lineage: no parents or children", style="dim")
    table = _table(
        "direction",
        "version",
        "relationship",
        "stage",
        title="lineage",
        no_wrap=("stage",),
        firm=("version",),
    )
    for v, relationship in parents:
        table.add_row("parent", Folded(v.ref, keep=v.version), relationship, stage_text(v.stage))
    for v, relationship in children:
        table.add_row("child", Folded(v.ref, keep=v.version), relationship, stage_text(v.stage))
    return table
