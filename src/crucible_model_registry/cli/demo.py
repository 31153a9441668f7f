"""``cmr demo``: the registry's story told on the configured registry (the embedded default).

Two supervised fine-tunes of an external base model, a DPO child, a merge of two
versions, metrics that arrive after evaluation, promotion to production, a query and the
lineage drawn as a tree. Running it again registers nothing new: every registration
returns the existing version of the same training run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crucible_model_registry.cli import _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.domain.records import ModelVersion
    from crucible_model_registry.registry import Registry

__all__ = ["app"]

app = typer.Typer()

MODEL = "demo-assistant"
BASE_MODEL = "meta-llama/Llama-3.1-8B"


class _Story:
    """Narration for people; silent under ``--json`` and ``--quiet``."""

    def __init__(self, registry: Registry, *, silent: bool) -> None:
        self.registry = registry
        self.silent = silent
        self.console: Console | None = None if silent else _session.stdout_console()
        self.step = 0

    def chapter(self, title: str) -> None:
        self.step += 1
        if self.console is not None:
            self.console.print()
            self.console.rule(f"[bold]{self.step}. {title}", align="left")

    def say(self, *renderables: Any) -> None:
        if self.console is not None:
            self.console.print(*renderables)

    def register(self, what: str, **fields: Any) -> ModelVersion:
        from rich.text import Text

        from crucible_model_registry.cli._render import fmt_metrics, stage_text
        from crucible_model_registry.errors import DuplicateConfigError

        try:
            v = self.registry.register(model_name=MODEL, base_model=BASE_MODEL, **fields)
            verb = "registered"
        except DuplicateConfigError as exc:  # a second run: the same training run exists
            v, verb = exc.existing, "found (registered by an earlier run)"
        line = Text(f"{what}: {verb} ").append(v.ref, style="bold")
        line.append(f" (id {v.id}, recipe {v.recipe}, ").append(stage_text(v.stage)).append(")")
        if v.metrics:
            line.append(f"  {fmt_metrics(v.metrics)}")
        self.say(line)
        return v


def _attach_config(story: _Story, v: ModelVersion) -> None:
    """Upload a small file as the version's ``config`` artifact (once)."""
    if any(a.type.value == "config" for a in v.artifacts):
        story.say(f"  its config artifact is stored already (id {v.artifacts[0].id})")
        return
    import json

    with tempfile.TemporaryDirectory(prefix="cmr-demo-") as tmp:
        path = Path(tmp) / "adapter_config.json"
        path.write_text(json.dumps(v.training_config, indent=2) + "\n", encoding="utf-8")
        a = story.registry.upload_artifact(v, "config", path)
    story.say(
        f"  uploaded {path.name} as artifact {a.id} to {a.storage_backend} storage "
        f"({a.size_bytes} bytes, sha256 {(a.checksum or '')[:12]}...)"
    )


@app.command(rich_help_panel="Setup")
def demo(json_flag: _session.JsonFlag = False) -> None:
    """Walk through the registry on example data (safe to run again)."""
    from rich.text import Text

    from crucible_model_registry.cli._render import versions_table
    from crucible_model_registry.query import Query
    from crucible_model_registry.store.engine import redact_url

    session = _session.current()
    registry = session.registry()
    registry.list_models()  # fails here, before any narration, if the schema is not ready
    story = _Story(registry, silent=session.wants_json(json_flag) or session.quiet)
    story.say(
        Text("crucible-model-registry demo on ", style="bold").append(
            redact_url(session.settings().resolved_database_url)
        )
    )

    story.chapter(f"Supervised fine-tune of the external base model {BASE_MODEL}")
    sft = story.register(
        "SFT",
        recipe="sft",
        training_config={
            "lr": 2e-5,
            "epochs": 3,
            "dataset": "ultrachat-200k",
            "lora": {"r": 16, "alpha": 32},
        },
        metrics={"accuracy": 0.84, "loss": 1.31},
        tags=["sft"],
    )
    _attach_config(story, sft)

    story.chapter("A DPO run on top of the SFT version")
    dpo = story.register(
        "DPO",
        recipe="dpo",
        training_config={"beta": 0.1, "lr": 5e-7, "dataset": "ultrafeedback"},
        metrics={"accuracy": 0.91, "loss": 1.12},
        tags=["dpo"],
        parents=[sft],
        lineage_type="dpo",
    )

    story.chapter("A second SFT run with a lower learning rate and longer training")
    sft2 = story.register(
        "SFT #2",
        recipe="sft",
        training_config={
            "lr": 1e-5,
            "epochs": 5,
            "dataset": "ultrachat-200k",
            "lora": {"r": 16, "alpha": 32},
        },
        metrics={"accuracy": 0.88, "loss": 1.2},
        tags=["sft"],
    )

    story.chapter("A merge of the DPO version and the second SFT (SLERP)")
    merged = story.register(
        "merge",
        recipe="merge",
        training_config={"method": "slerp", "t": 0.5},
        tags=["merge"],
        parents=[dpo, sft2],
        lineage_type="merge",
    )

    story.chapter("Evaluation results arrive after registration")
    merged = registry.update_metrics(merged, {"accuracy": 0.93, "mt_bench": 8.1})
    story.say(Text(f"{merged.ref}: accuracy=0.93 mt_bench=8.1 merged into its metrics"))

    story.chapter("Promotion: DPO to production, then the merge replaces it")
    if merged.stage.value != "production":
        dpo = registry.promote(dpo, "staging", reason="beats the SFT baseline")
        dpo = registry.promote(dpo, "production", reason="passed the safety review")
        story.say(Text(f"{dpo.ref}: experiment -> staging -> production"))
        merged = registry.promote(
            merged, "production", archive_existing=True, reason="the merge wins the eval"
        )
        dpo = registry.get_version(dpo.id)
        story.say(
            Text(f"{merged.ref}: experiment -> production; {dpo.ref} archived in the same step")
        )
    else:
        story.say(Text(f"{merged.ref} is in production already (an earlier run promoted it)"))
    merged = registry.set_alias(merged, "champion", reason="demo")
    story.say(Text(f"alias {MODEL}@champion -> {merged.ref}"))

    story.chapter("Query: production versions from recipe 'merge' with accuracy >= 0.9")
    found = (
        Query(registry)
        .where_stage("production")
        .where_recipe("merge")
        .where_metric("accuracy", ">=", 0.9)
        .order_by_metric("accuracy", "desc")
        .execute()
    )
    width = story.console.width if story.console is not None else 80
    story.say(versions_table(found, width=width))
    everything = Query(registry).where_model_name(MODEL).execute()
    story.say()
    story.say(versions_table(everything, title=f"every version of {MODEL}", width=width))

    story.chapter(f"Lineage of {merged.ref}: what it was made from")
    graph = registry.get_lineage(merged, direction="up")
    story.say(Text(graph.to_tree("up")))
    story.say(
        Text("Next: ", style="bold").append(
            f"cmr query --stage production · cmr show {MODEL}@champion · "
            f"cmr lineage {sft.ref} --down · cmr lineage {merged.ref} --format mermaid"
        )
    )
    if session.wants_json(json_flag):
        _session.print_json(
            {
                "versions": everything,
                "query": found,
                "lineage": graph.to_dict(),
            }
        )
    elif session.quiet:
        typer.echo(merged.id)
