"""``cmr policy show|set``: a model's promotion policy, from a TOML or YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crucible_model_registry.cli import _parse, _session

if TYPE_CHECKING:
    from rich.console import Console

    from crucible_model_registry.domain.policy import PromotionPolicy

__all__ = ["app"]

app = typer.Typer()
policy_app = typer.Typer(
    help="Which promotions a model allows, the gates they pass, exclusive stages.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy", rich_help_panel="Governance")

Model = Annotated[str, typer.Argument(help="Model name.")]

# The complete policy file, shown by `cmr policy set --help` and in the README (a test
# checks that both parse, apply and agree).
EXAMPLE_TOML = """\
exclusive = ["production"]  # at most one version: promoting archives the incumbent
gate_tags = "version"  # a gate's tag condition reads the version's tags ("version_or_model")
protected = ["production"]  # only a token with the promote role moves versions in or out
require_distinct_promoter = ["production"]  # four eyes: not by the version's registrant

[allowed]  # target stage = the stages a version may enter it from
staging = ["experiment"]
production = ["staging"]

[gates.staging]  # what a version must match to enter staging: query filters
min_accuracy = 0.85  # min_<metric>: >=, max_<metric>: <=
tag = "evaluated"  # also recipe, base_model, model_name, config_hash

[gates.production]
recipe = "sft"
max_latency_ms = 50
metric = [  # [name, operator, number]; operators gt gte lt lte eq ne or > >= < <= == !=
  ["accuracy", "gt", 0.9],
  ["recall_at_10", "gte", 0.8],
  ["loss", "lt", 1.5],
  ["toxicity", "lte", 0.01],
  ["eval_suite", "eq", 3],
  ["regressions", "ne", 1],
]
"""


def _show(model: str, policy: PromotionPolicy | None, json_flag: bool) -> None:
    def human(console: Console) -> None:
        from rich.text import Text

        from crucible_model_registry.cli._render import mapping_table

        if policy is None or policy.is_empty:
            console.print(Text(f"{model} has no promotion policy: every promotion is allowed"))
            return
        console.print(mapping_table(_policy_rows(policy), title=f"promotion policy of {model}"))

    doc = {"model": model, "policy": None if policy is None else policy.to_dict()}
    _session.emit(doc, json_flag=json_flag, human=human)


def _policy_rows(policy: PromotionPolicy) -> list[tuple[str, str]]:
    from crucible_model_registry.domain.query_conditions import describe

    rows = [
        (f"{target.value} only from", ", ".join(s.value for s in sources) or "(no stage)")
        for target, sources in policy.allowed.items()
    ]
    rows += [
        (f"{target.value} gate", describe(gate.where)) for target, gate in policy.gates.items()
    ]
    if policy.exclusive:
        rows.append(("exclusive", ", ".join(s.value for s in policy.exclusive)))
    rows.append(("protected", ", ".join(s.value for s in policy.protected) or "(none)"))
    if policy.require_distinct_promoter:
        stages = ", ".join(s.value for s in policy.require_distinct_promoter)
        rows.append(("four eyes", f"{stages}: not by the version's registrant"))
    if policy.gates and policy.gate_tags != "version":
        rows.append(("gate tags", "the version's or its model's"))
    return rows


@policy_app.command("show")
def show(model: Model, json_flag: _session.JsonFlag = False) -> None:
    """Show a model's promotion policy."""
    _show(model, _session.current().registry().get_promotion_policy(model), json_flag)


@policy_app.command(
    "set",
    epilog="A complete policy file (TOML; YAML takes the same keys):\n\n"
    # Brackets escaped: the help is rich markup, where [allowed] would be a style tag.
    + "\n".join(f"    {line}" for line in EXAMPLE_TOML.replace("[", "\\[").splitlines()),
)
def set_policy(
    model: Model,
    file: Annotated[
        Path | None,
        typer.Argument(
            help="TOML (.toml), YAML or JSON (.json) policy file; see the example below.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the policy: every promotion allowed.")
    ] = False,
    json_flag: _session.JsonFlag = False,
) -> None:
    """Store a model's promotion policy (every client of the database enforces it).

    allowed: target stage -> the stages it may be entered from; gates: target stage -> the
    query filters a version must match (as in cmr query); exclusive: stages that hold one
    version. A stage without a rule is unrestricted.
    """
    if (file is None) == (not clear):
        raise typer.BadParameter("give a policy FILE or --clear (not both)", param_hint="FILE")
    registry = _session.current().registry()
    if clear:
        registry.set_promotion_policy(model, None)
        _show(model, None, json_flag)
        return
    assert file is not None
    registry.set_promotion_policy(model, _parse.load_mapping_file(file, option="FILE"))
    _show(model, registry.get_promotion_policy(model), json_flag)
