"""Pipeline stages: describe() conformance, option checks, Register -> Promote pipelines."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from crucible_model_registry import (
    DuplicateConfigError,
    ModelVersion,
    NotFoundError,
    Registry,
    Stage,
    ValidationError,
    stages,
)

BASE = {"model_name": "my-sft", "recipe": "sl_basic", "base_model": "org/base"}


class Train:
    """A train-like stage: leaves a config, a checkpoint and metrics in the context."""

    def __init__(self) -> None:
        self.ran = False

    def describe(self, opts: Mapping[str, object] | None = None) -> stages.StageSchema:
        return {
            "name": "train",
            "description": "pretend to train",
            "required": ["lr"],
            "optional": ["steps"],
            "types": {"lr": "float", "steps": "integer"},
        }

    def run(self, context: stages.ContextLike, opts: Mapping[str, object]) -> stages.ContextLike:
        self.ran = True
        assert isinstance(context, stages.Context)
        context.put_artifact("training_config", {"lr": opts["lr"], "steps": opts.get("steps", 1)})
        context.put_artifact("checkpoint_id", "s3://ckpts/run-7/final")
        context.put_metric("accuracy", 0.93).put_metric("loss", 0.41)
        return context


# --- describe() conformance -------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage_class", "name"),
    [(stages.Register, "model_register"), (stages.Promote, "model_promote"), (Train, "train")],
)
def test_describe_conforms(stage_class, name):
    stage = stage_class()
    schema = stage.describe()

    assert isinstance(stage, stages.Stage)
    assert schema["name"] == name
    assert isinstance(schema["description"], str)
    assert schema["description"]
    required, optional = schema["required"], schema["optional"]
    assert not set(required) & set(optional)
    assert set(schema["types"]) == set(required) | set(optional)
    assert len(set(required)) == len(required)
    assert len(set(optional)) == len(optional)
    for spec in schema["types"].values():
        assert _valid_spec(spec), spec
    assert stages.check_schema(schema) is schema
    assert stage.describe({"anything": 1}) == schema


def _valid_spec(spec: object) -> bool:
    # An independent reading of API.md §8's type specs.
    if spec in ("string", "integer", "float", "boolean", "map", "list"):
        return True
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "enum":
        return isinstance(spec[1], list) and len(spec[1]) > 0
    return isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "list" and _valid_spec(spec[1])


def test_promote_accepts_every_stage_name():
    spec = stages.Promote().describe()["types"]["stage"]

    assert isinstance(spec, tuple)
    assert isinstance(spec[1], list)
    assert set(spec[1]) >= {s.value for s in Stage} | {"development"}


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        ({"description": "d", "required": [], "optional": [], "types": {}}, {"name"}),
        (
            {
                "name": "s",
                "description": "d",
                "required": ["a"],
                "optional": ["a"],
                "types": {"a": "string"},
            },
            {"required"},
        ),
        (
            {
                "name": "s",
                "description": "d",
                "required": ["a"],
                "optional": [],
                "types": {"a": "text"},
            },
            {"types.a"},
        ),
        (
            {
                "name": "s",
                "description": "d",
                "required": [],
                "optional": ["a"],
                "types": {"a": ("enum", [])},
            },
            {"types.a"},
        ),
        (
            {
                "name": "s",
                "description": "d",
                "required": [],
                "optional": ["a"],
                "types": {"a": ("list", "text")},
            },
            {"types.a"},
        ),
        (
            {
                "name": "s",
                "description": "d",
                "required": [],
                "optional": [],
                "types": {"a": "string"},
            },
            {"types.a"},
        ),
    ],
)
def test_check_schema_rejects_malformed_schemas(schema, fields):
    with pytest.raises(ValidationError) as info:
        stages.check_schema(schema)

    assert set(info.value.errors) == fields


# --- options ----------------------------------------------------------------------------


def test_check_options_reports_every_problem():
    with pytest.raises(ValidationError) as info:
        stages.check_options(
            stages.Register(),
            {
                "recipe": 3,
                "base_model": "b",
                "tags": ["a", 1],
                "colour": "red",
                "lineage_type": "cloned",
                "metrics": None,
            },
        )

    assert set(info.value.errors) == {"model_name", "recipe", "tags", "colour", "lineage_type"}


def test_check_options_drops_none_values():
    opts = stages.check_options(stages.Promote(), {"stage": "staging", "reason": None})

    assert opts == {"stage": "staging"}


@pytest.mark.parametrize(
    ("spec_value", "ok"),
    [
        (("float", 1), True),
        (("float", 0.5), True),
        (("float", True), False),
        (("float", float("nan")), False),
        (("integer", 2), True),
        (("integer", 2.0), False),
        (("boolean", 1), False),
        (("map", {}), True),
        (("list", "abc"), False),
    ],
)
def test_option_types(spec_value, ok):
    spec, value = spec_value

    class One:
        def describe(self, opts=None):
            return {
                "name": "one",
                "description": "d",
                "required": ["x"],
                "optional": [],
                "types": {"x": spec},
            }

        def run(self, context, opts):
            return context

    if ok:
        assert stages.check_options(One(), {"x": value}) == {"x": value}
    else:
        with pytest.raises(ValidationError) as info:
            stages.check_options(One(), {"x": value})
        assert set(info.value.errors) == {"x"}


# --- Context ----------------------------------------------------------------------------


def test_context_methods_chain_and_read_back():
    ctx = stages.Context(experiment_id="e", run_id="r")
    same = ctx.put_artifact("a", 1).put_metric("acc", 1).assign("k", "v")

    assert same is ctx
    assert ctx.get_artifact("a") == 1
    assert ctx.get_artifact("missing", "d") == "d"
    assert ctx.get_metric("acc") == 1.0
    assert isinstance(ctx.get_metric("acc"), float)
    assert ctx.get_metric("missing") is None
    assert ctx.assigns == {"k": "v"}


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "0.9"])
def test_context_refuses_bad_metrics(value):
    ctx = stages.Context(metrics={"acc": 0.5})
    with pytest.raises(ValidationError) as info:
        ctx.put_metric("acc", value)

    assert set(info.value.errors) == {"metrics.acc"}
    assert ctx.metrics == {"acc": 0.5}


# --- pipelines on a real registry -------------------------------------------------------


def test_pipeline_registers_and_promotes_with_context_metrics(registry: Registry) -> None:
    ctx = stages.Context(experiment_id="sweep", run_id="run-7")

    out = stages.run_pipeline(
        ctx,
        [
            (Train(), {"lr": 1e-4, "steps": 10}),
            (stages.Register(), BASE),
            (stages.Promote, {"stage": "production", "reason": "eval passed"}),
        ],
    )

    assert out is ctx
    version = ctx.get_artifact("model_version")
    assert isinstance(version, ModelVersion)
    assert version.stage is Stage.PRODUCTION
    assert version.version == "1"
    assert version.metrics == {"accuracy": 0.93, "loss": 0.41}
    assert version.training_config == {"lr": 1e-4, "steps": 10}
    [checkpoint] = version.artifacts
    assert (checkpoint.type.value, checkpoint.storage_backend, checkpoint.storage_path) == (
        "checkpoint",
        "s3",
        "s3://ckpts/run-7/final",
    )
    stored = registry.get_version("my-sft@production")
    assert stored.id == version.id
    assert stored.metrics == {"accuracy": 0.93, "loss": 0.41}
    history = registry.stage_history(version)
    assert [t.to_stage for t in history] == [Stage.EXPERIMENT, Stage.PRODUCTION]
    assert history[-1].reason == "eval passed"


def test_pipeline_with_a_missing_required_option_registers_nothing(registry: Registry) -> None:
    train = Train()
    opts = {k: v for k, v in BASE.items() if k != "model_name"}

    with pytest.raises(ValidationError) as info:
        stages.run_pipeline(
            stages.Context(),
            [(train, {"lr": 0.1}), (stages.Register(), opts), (stages.Promote(), {})],
        )

    assert set(info.value.errors) == {"stages[1].model_name", "stages[2].stage"}
    assert train.ran is False
    assert registry.list_models() == []


def test_pipeline_rejects_objects_that_are_not_stages(registry: Registry) -> None:
    with pytest.raises(ValidationError) as info:
        stages.run_pipeline({}, [(stages.Register(), BASE), (object(), {})])  # type: ignore[list-item]

    assert set(info.value.errors) == {"stages[1]"}
    assert registry.list_models() == []


def test_plain_dict_context(registry: Registry) -> None:
    ctx: dict[str, object] = {
        "metrics": {"accuracy": 0.8},
        "artifacts": {"training_config": {"lr": 0.01}},
    }

    out = stages.run_pipeline(
        ctx,
        [(stages.Register(), {**BASE, "version": "v1"}), (stages.Promote(), {"stage": "staging"})],
    )

    assert out is ctx
    version = ctx["artifacts"]["model_version"]  # type: ignore[index]
    assert isinstance(version, ModelVersion)
    assert (version.version, version.stage, version.metrics) == (
        "v1",
        Stage.STAGING,
        {"accuracy": 0.8},
    )
    assert version.artifacts == []


def test_options_win_over_the_context(registry: Registry) -> None:
    ctx = stages.Context(metrics={"accuracy": 0.5, "loss": 1.0})
    ctx.put_artifact("training_config", {"lr": 1}).put_artifact("checkpoint_id", "/ckpt/a")

    stages.Register(registry).run(
        ctx,
        {
            **BASE,
            "training_config": {"lr": 2},
            "metrics": {"accuracy": 0.9},
            "checkpoint_id": "tinker://run/weights/final",
            "checkpoint_type": "adapter",
            "tags": ["sft"],
        },
    )

    version = registry.get_version("my-sft@latest")
    assert version.training_config == {"lr": 2}
    assert version.metrics == {"accuracy": 0.9, "loss": 1.0}
    assert version.tags == ["sft"]
    [artifact] = version.artifacts
    assert (artifact.type.value, artifact.storage_backend, artifact.storage_path) == (
        "adapter",
        "tinker",
        "tinker://run/weights/final",
    )


def test_register_without_any_training_config_records_nothing(registry: Registry) -> None:
    with pytest.raises(stages.StageFailedError) as info:
        stages.run_pipeline(stages.Context(), [(stages.Register(), BASE)])

    assert (info.value.stage, info.value.index) == ("model_register", 0)
    assert isinstance(info.value.error, ValidationError)
    assert "training_config" in info.value.error.errors
    assert info.value.__cause__ is info.value.error
    assert registry.list_models() == []


def test_failing_stage_stops_the_pipeline_and_names_itself(registry: Registry) -> None:
    first = stages.run_pipeline(
        stages.Context(), [(Train(), {"lr": 0.1}), (stages.Register(), BASE)]
    )
    existing = first.get_artifact("model_version")
    assert isinstance(existing, ModelVersion)

    ctx = stages.Context()
    with pytest.raises(stages.StageFailedError) as info:
        stages.run_pipeline(
            ctx,
            [
                (Train(), {"lr": 0.1}),
                (stages.Register(), {**BASE, "version": "2"}),
                (stages.Promote(), {"stage": "production"}),
            ],
        )

    assert (info.value.stage, info.value.index) == ("model_register", 1)
    assert isinstance(info.value.error, DuplicateConfigError)
    assert info.value.error.existing.id == existing.id
    assert ctx.get_artifact("model_version") is None
    assert registry.get_version(existing.id).stage is Stage.EXPERIMENT
    assert [v.version for v in [registry.get_version("my-sft@latest")]] == ["1"]


def test_register_can_return_the_existing_version(registry: Registry) -> None:
    first = stages.run_pipeline(
        stages.Context(), [(Train(), {"lr": 0.1}), (stages.Register(), BASE)]
    )
    again = stages.run_pipeline(
        stages.Context(),
        [(Train(), {"lr": 0.1}), (stages.Register(), {**BASE, "on_duplicate": "return"})],
    )

    assert again.get_artifact("model_version") == first.get_artifact("model_version")


def test_promote_by_version_option(registry: Registry) -> None:
    v = registry.register(BASE, training_config={"lr": 1})

    ctx = stages.Promote().run(stages.Context(), {"version": v.ref, "stage": "staging"})

    promoted = ctx.get_artifact("model_version") if isinstance(ctx, stages.Context) else None
    assert isinstance(promoted, ModelVersion)
    assert (promoted.id, promoted.stage) == (v.id, Stage.STAGING)


def test_promote_without_a_version_changes_nothing(registry: Registry) -> None:
    v = registry.register(BASE, training_config={"lr": 1})

    with pytest.raises(stages.StageFailedError) as info:
        stages.run_pipeline(stages.Context(), [(stages.Promote(), {"stage": "production"})])

    assert info.value.stage == "model_promote"
    assert isinstance(info.value.error, ValidationError)
    assert set(info.value.error.errors) == {"version"}
    assert registry.get_version(v.id).stage is Stage.EXPERIMENT


def test_promote_of_an_unknown_version(registry: Registry) -> None:
    with pytest.raises(stages.StageFailedError) as info:
        stages.run_pipeline(
            stages.Context(), [(stages.Promote(), {"version": "nope@1", "stage": "staging"})]
        )

    assert isinstance(info.value.error, NotFoundError)
