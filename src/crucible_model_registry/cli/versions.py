"""Version commands: register, show, promote, history, metrics, tag and delete."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crucible_model_registry.cli import _parse, _session
from crucible_model_registry.domain.enums import Relationship, Stage, parse_enum
from crucible_model_registry.domain.records import to_jsonable

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from crucible_model_registry.domain.records import ModelVersion, StageTransition
    from crucible_model_registry.registry import Registry

__all__ = ["app"]

app = typer.Typer()
tag_app = typer.Typer(help="Add or remove a version's tags.", no_args_is_help=True)
app.add_typer(tag_app, name="tag", rich_help_panel="Versions")

PANEL = "Versions"
STAGES = tuple(s.value for s in Stage)
# What people type most (the input aliases), then every relationship's own name.
_SHORT_RELATIONSHIPS = (
    "fine_tune",
    "dpo",
    "rl",
    "distillation",
    "merge",
    "quantization",
    "adapter",
)
RELATIONSHIPS = (*_SHORT_RELATIONSHIPS, *(r.value for r in Relationship))

_SHOW_EPILOG = (
    "--json prints the version's fields at the top level plus lineage (parents, children), "
    "stage_history and warnings: cmr show m@production --json | jq '{version, stage, "
    "accuracy: .metrics.accuracy, parents: [.lineage.parents[].ref]}'"
)

Ref = Annotated[
    str,
    typer.Argument(help="Version: id, model@version, model@stage, model@latest or model@alias."),
]


class OnDuplicate(StrEnum):
    """What ``register`` does when the training run is registered already."""

    RAISE = "raise"
    RETURN = "return"


def _complete(choices: tuple[str, ...]) -> Any:
    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]

    return complete


def _training_config(config: Path | None, assignments: list[str]) -> dict[str, Any]:
    data = _parse.load_mapping_file(config, option="--config") if config is not None else {}
    for assignment in assignments:
        key, text = _parse.split_pair(assignment, option="--set")
        _parse.set_dotted(data, key, _parse.parse_value(text), option="--set")
    return data


@app.command(
    rich_help_panel=PANEL,
    epilog="Example: cmr register llama-sft -r sft -b meta-llama/Llama-3.1-8B -c train.yaml "
    "-s optim.lr=1e-4 -m accuracy=0.91 -a checkpoint=s3://bucket/run-7/ -t sft",
)
def register(
    model: Annotated[str, typer.Argument(help="Model name; created on first registration.")],
    *,
    recipe: Annotated[
        str, typer.Option("--recipe", "-r", help="Training recipe (sft, dpo, merge, ...).")
    ],
    base_model: Annotated[
        str, typer.Option("--base-model", "-b", help="The base model trained from.")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Training config: a JSON or YAML file holding a mapping.",
            dir_okay=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="KEY=VALUE in the training config, over --config; dotted keys nest "
            "(optim.lr=1e-4); a value is JSON when it parses, else a string.",
        ),
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="NAME=NUMBER, repeatable.")
    ] = None,
    artifact: Annotated[
        list[str] | None,
        typer.Option(
            "--artifact",
            "-a",
            help="TYPE=URI stored elsewhere already (s3://..., hf://..., or a local path).",
        ),
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option(
            "--parent", "-p", help="Parent version ref, repeatable (a merge has several)."
        ),
    ] = None,
    lineage_type: Annotated[
        str | None,
        typer.Option(
            "--lineage-type",
            "-l",
            help="How it was made from its parents: fine_tune, dpo, rl, distillation, merge, "
            "quantization, adapter (default: merge for several parents, else fine_tune).",
            autocompletion=_complete(RELATIONSHIPS),
            show_default=False,
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag, repeatable.")] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Version string (default: the model's next number)."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    on_duplicate: Annotated[
        OnDuplicate,
        typer.Option(
            "--on-duplicate",
            help="When this training run (base model, recipe, config) is registered already: "
            "fail, or return the existing version.",
            case_sensitive=False,
        ),
    ] = OnDuplicate.RAISE,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Register a trained version (model, recipe, base model, config, metrics, lineage)."""
    from crucible_model_registry.errors import DuplicateConfigError

    fields: dict[str, Any] = {
        "model_name": model,
        "recipe": recipe,
        "base_model": base_model,
        "training_config": _training_config(config, set_ or []),
        "metrics": _parse.parse_metric_pairs(metric or [], option="--metric"),
        "artifacts": [_parse.artifact_from_uri(a) for a in artifact or []],
        "parents": list(parent or []),
        "tags": list(tag or []),
    }
    for key, value in (
        ("version", version),
        ("description", description),
        ("lineage_type", lineage_type),
    ):
        if value is not None:
            fields[key] = value
    registry = _session.current().registry()
    try:
        v = registry.register(fields)
        created = True
    except DuplicateConfigError as exc:
        if on_duplicate is OnDuplicate.RAISE:
            raise
        v, created = exc.existing, False

    def human(console: Console) -> None:
        from rich.text import Text

        from crucible_model_registry.cli._render import fmt_metrics, stage_text

        line = Text("Registered " if created else "Already registered as ")
        line.append(v.ref, style="bold").append(f" (id {v.id}), stage ").append(stage_text(v.stage))
        line.append(f", config hash {v.config_hash[:12]}")
        console.print(line)
        if v.metrics:
            console.print(Text(f"metrics: {fmt_metrics(v.metrics)}"))

    _session.emit(v, json_flag=json_flag, human=human, quiet=[v.id])


def _lineage_neighbours(
    registry: Registry, v: ModelVersion
) -> tuple[list[tuple[ModelVersion, str]], list[tuple[ModelVersion, str]]]:
    """A version's direct parents and children, each with its edge's relationship."""
    graph = registry.get_lineage(v, max_depth=1)
    parents = [(p, edge.relationship.value) for edge, p in graph.parents(v.id)]
    children = [(c, edge.relationship.value) for edge, c in graph.children(v.id)]
    return parents, children


def _neighbour(v: ModelVersion, relationship: str) -> dict[str, Any]:
    return {"id": v.id, "ref": v.ref, "relationship": relationship, "stage": v.stage.value}


def _stage_named_by(ref: str) -> Stage | None:
    """The stage a ``model@<stage>`` ref names, or None for any other ref."""
    from crucible_model_registry.errors import ValidationError

    name, sep, selector = ref.strip().rpartition("@")
    if not (sep and name):
        return None
    try:
        return parse_enum(Stage, selector, field="ref")
    except ValidationError:
        return None


def _shared_stage_warning(registry: Registry, ref: str, v: ModelVersion) -> str | None:
    """A warning when ``model@<stage>`` picked one of several versions in that stage."""
    stage = _stage_named_by(ref)
    if stage is None:
        return None
    holders = registry.query({"model_name": v.model_name, "stage": stage.value})
    if len(holders) < 2:
        return None
    others = ", ".join(h.ref for h in holders if h.id != v.id)
    return (
        f"{len(holders)} versions of {v.model_name} are in {stage.value}; "
        f"{ref.strip()} means the most recently registered one, {v.ref} (also there: {others}). "
        f"Promote with --archive-existing, or make {stage.value} exclusive in the model's "
        "policy (cmr policy set), to keep one."
    )


@app.command(rich_help_panel=PANEL, epilog=_SHOW_EPILOG)
def show(ref: Ref, json_flag: _session.JsonFlag = False) -> None:
    """Show a version: metrics, config, artifacts, lineage summary and stage history."""
    registry = _session.current().registry()
    v = registry.get_version(ref)
    history = registry.stage_history(v)
    parents, children = _lineage_neighbours(registry, v)
    warning = _shared_stage_warning(registry, ref, v)
    # The version's own fields at the top level (jq .stage, .metrics.accuracy), then what
    # `show` adds around it.
    doc: dict[str, Any] = {
        **v.to_dict(),
        "lineage": {
            "parents": [_neighbour(p, rel) for p, rel in parents],
            "children": [_neighbour(c, rel) for c, rel in children],
        },
        "stage_history": history,
        "warnings": [warning] if warning else [],
    }
    if warning and not _session.current().wants_json(json_flag):
        _session.warn(warning)

    def human(console: Console) -> None:
        from crucible_model_registry.cli._render import version_detail

        version_detail(console, v, history=history, parents=parents, children=children)

    _session.emit(doc, json_flag=json_flag, human=human, quiet=[v.id])


@app.command(rich_help_panel=PANEL)
def promote(
    ref: Ref,
    stage: Annotated[
        str,
        typer.Argument(
            help="Target stage: experiment, staging, production or archived.",
            autocompletion=_complete(STAGES),
        ),
    ],
    *,
    archive_existing: Annotated[
        bool,
        typer.Option(
            "--archive-existing",
            help="Archive the model's other versions in that stage, in the same transaction.",
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the stage history.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing: show each condition of the model's policy on this move, "
            "met or not (exit 1 when the policy would refuse it).",
        ),
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Move a version to another stage (recorded in its stage history).

    Says which versions it archived: with --archive-existing, or when the model's policy
    makes the stage exclusive.
    """
    registry = _session.current().registry()
    if check:
        _check_promotion(
            registry, ref, stage, archive_existing=archive_existing, json_flag=json_flag
        )
        return
    before = registry.get_version(ref)
    target = parse_enum(Stage, stage, field="stage")
    incumbents = [
        x.id
        for x in registry.query({"model_name": before.model_name, "stage": target.value})
        if x.id != before.id
    ]
    v = registry.promote(before, target, reason=reason, archive_existing=archive_existing)
    archived = (
        [
            x
            for x in registry.query({"model_name": v.model_name, "stage": Stage.ARCHIVED.value})
            if x.id in incumbents
        ]
        if incumbents and target is not Stage.ARCHIVED and before.stage != v.stage
        else []
    )
    doc = {**v.to_dict(), "archived": [{"id": x.id, "ref": x.ref} for x in archived]}

    def human(console: Console) -> None:
        from rich.text import Text

        from crucible_model_registry.cli._render import stage_text

        if before.stage == v.stage:
            console.print(
                Text(f"{v.ref} is in ").append(stage_text(v.stage)).append(" already; no change")
            )
            return
        line = Text("Promoted ").append(v.ref, style="bold").append(": ")
        line.append(stage_text(before.stage)).append(" -> ").append(stage_text(v.stage))
        console.print(line)
        if archived:
            done = Text("Archived ").append(", ".join(x.ref for x in archived), style="bold")
            plural = "s" if len(archived) > 1 else ""
            console.print(done.append(f" (the model's other {target.value} version{plural})"))

    _session.emit(doc, json_flag=json_flag, human=human, quiet=[v.id])


def _looks_like_ref(text: str) -> bool:
    stripped = text.strip()
    return "@" in stripped or (stripped.isdigit() and stripped.isascii())


def _check_promotion(
    registry: Registry, ref: str, stage: str, *, archive_existing: bool, json_flag: bool
) -> None:
    check = registry.check_promotion(ref, stage, archive_existing=archive_existing)
    doc = {**to_jsonable(check), "allowed": check.allowed}

    def human(console: Console) -> None:
        from rich.text import Text

        head = Text(f"{check.version_ref}: {check.from_stage.value} -> {check.target.value}: ")
        head.append(*(("allowed", "green") if check.allowed else ("refused", "bold red")))
        console.print(head)
        if not check.conditions:
            console.print("  the model's policy sets no condition on this move")
        for condition in check.conditions:
            mark = Text("  pass ", style="green") if condition.met else Text("  FAIL ", "red")
            console.print(mark.append(condition.text, style=""))

    _session.emit(doc, json_flag=json_flag, human=human, quiet=check.unmet)
    if not check.allowed:
        raise typer.Exit(1)


@app.command(rich_help_panel=PANEL)
def history(
    target: Annotated[
        str,
        typer.Argument(
            help="A version ref (its stage history) or a model name (every version's, "
            "with alias moves).",
            metavar="REF_OR_MODEL",
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Which version held model@stage or model@alias at this ISO 8601 time "
            "(UTC unless it carries an offset).",
            show_default=False,
        ),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Show stage history, or which version held a stage or alias at a past time."""
    registry = _session.current().registry()
    if at is not None:
        _history_at(registry, target, _parse.parse_time(at), json_flag)
    elif _looks_like_ref(target):
        v = registry.get_version(target)
        transitions = registry.stage_history(v)

        def human(console: Console) -> None:
            from crucible_model_registry.cli._render import history_table

            console.print(history_table(transitions, title=f"stage history of {v.ref}"))

        _session.emit(transitions, json_flag=json_flag, human=human)
    else:
        _model_history(registry, target, json_flag)


def _history_at(registry: Registry, ref: str, when: datetime, json_flag: bool) -> None:
    if not _looks_like_ref(ref) or ref.strip().isdigit():
        raise typer.BadParameter(
            "--at needs a model@stage or model@alias ref", param_hint="REF_OR_MODEL"
        )
    v = registry.get_version(ref, at=when)

    def human(console: Console) -> None:
        from rich.text import Text

        from crucible_model_registry.cli._render import fmt_time, stage_text

        line = Text(f"At {fmt_time(when)} UTC, {ref} was ")
        line.append(v.ref, style="bold").append(f" (id {v.id}; now ").append(stage_text(v.stage))
        console.print(line.append(")"))

    _session.emit(v, json_flag=json_flag, human=human, quiet=[v.id])


def _model_history(registry: Registry, name: str, json_flag: bool) -> None:
    model = registry.get_model(name)
    versions = _model_versions(registry, model.name)
    refs = {v.id: v.ref for v in versions}
    transitions: list[StageTransition] = []
    for v in versions:
        transitions.extend(registry.stage_history(v))
    transitions.sort(key=lambda t: (t.at, t.version_id))
    alias_changes = registry.alias_history(model.name)
    doc = {"model": model.name, "stage_history": transitions, "alias_history": alias_changes}

    def human(console: Console) -> None:
        from crucible_model_registry.cli._render import alias_history_table, history_table

        console.print(history_table(transitions, refs=refs, title=f"stage history of {name}"))
        if alias_changes:
            console.print(alias_history_table(alias_changes, refs=refs, title="alias history"))

    _session.emit(doc, json_flag=json_flag, human=human)


def _model_versions(registry: Registry, name: str) -> list[ModelVersion]:
    query = getattr(registry, "query", None)
    if query is None:
        raise typer.BadParameter(
            "this build cannot list a model's versions; give a version ref",
            param_hint="REF_OR_MODEL",
        )
    result: list[ModelVersion] = query({"model_name": name})
    return result


@app.command(rich_help_panel=PANEL)
def metrics(
    ref: Ref,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            help="NAME=NUMBER to merge into the version's metrics; none: show them.",
            metavar="[NAME=NUMBER]...",
            show_default=False,
        ),
    ] = None,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Show a version's metrics, or merge new ones in (metrics can arrive later)."""
    registry = _session.current().registry()
    updates = _parse.parse_metric_pairs(pairs or [], option="NAME=NUMBER")
    v = registry.update_metrics(ref, updates) if updates else registry.get_version(ref)

    def human(console: Console) -> None:
        from crucible_model_registry.cli._render import mapping_table

        verb = "updated" if updates else ""
        console.print(mapping_table(sorted(v.metrics.items()), title=f"metrics of {v.ref} {verb}"))

    _session.emit(v.metrics, json_flag=json_flag, human=human)


Tags = Annotated[list[str], typer.Argument(help="Tags.", show_default=False)]


def _show_tags(v: ModelVersion, json_flag: bool) -> None:
    def human(console: Console) -> None:
        from rich.text import Text

        console.print(Text(f"{v.ref} tags: {', '.join(v.tags) or '(none)'}"))

    _session.emit(v, json_flag=json_flag, human=human, quiet=v.tags)


@tag_app.command("add")
def tag_add(ref: Ref, tags: Tags, json_flag: _session.JsonFlag = False) -> None:
    """Add tags to a version (ones it has already are ignored)."""
    _show_tags(_session.current().registry().add_tags(ref, tags), json_flag)


@tag_app.command("remove")
def tag_remove(ref: Ref, tags: Tags, json_flag: _session.JsonFlag = False) -> None:
    """Remove tags from a version (ones it lacks are ignored)."""
    _show_tags(_session.current().registry().remove_tags(ref, tags), json_flag)


@app.command(rich_help_panel=PANEL)
def delete(
    ref: Ref,
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete even when it is in production or has descendants."),
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Delete a version's records (its stage history stays as the audit trail).

    Its artifacts' stored bytes are kept (some may be shared or referenced elsewhere):
    `cmr artifact delete` first to delete them with it, or `cmr gc` afterwards to remove
    bytes no artifact references.
    """
    from crucible_model_registry.cli._render import fmt_size

    registry = _session.current().registry()
    v = registry.get_version(ref)
    registry.delete_version(v, force=force)
    kept = sum(a.size_bytes or 0 for a in v.artifacts)
    if v.artifacts:
        fate = (
            f"the stored bytes of its {len(v.artifacts)} artifact(s) ({fmt_size(kept)}) were "
            "kept; `cmr gc` removes bytes no artifact references"
        )
    else:
        fate = "it had no artifacts"
    doc = {
        "deleted": v.id,
        "ref": v.ref,
        "artifact_bytes_kept": [
            {
                "artifact_id": a.id,
                "storage_backend": a.storage_backend,
                "storage_path": a.storage_path,
            }
            for a in v.artifacts
        ],
    }
    _session.emit(
        doc,
        json_flag=json_flag,
        human=lambda console: console.print(f"Deleted {v.ref} (id {v.id}); {fate}", markup=False),
        quiet=[v.id],
    )
