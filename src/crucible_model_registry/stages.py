"""Pipeline stages: the Stage protocol, Context, the Register and Promote stages, run_pipeline.

A training script carries a context through its stages; each stage declares its options
in ``describe()`` and turns one context into the next in ``run()``:

```python
ctx = stages.Context(experiment_id="sft-sweep", run_id="run-7")
ctx.put_artifact("training_config", {"lr": 1e-4}).put_metric("accuracy", 0.93)
ctx = stages.run_pipeline(ctx, [
    (stages.Register(), {"model_name": "my-sft", "recipe": "sl_basic", "base_model": "org/base"}),
    (stages.Promote(), {"stage": "production", "reason": "eval passed"}),
])
ctx.get_artifact("model_version")   # the promoted ModelVersion
```

A plain dict with the same keys (``experiment_id``, ``run_id``, ``metrics``, ``artifacts``,
``assigns``) works as a context too; stages update it in place and return it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypedDict, TypeVar, cast, runtime_checkable

from crucible_model_registry._default import get_registry
from crucible_model_registry.domain import enums
from crucible_model_registry.domain.rules import check_metrics
from crucible_model_registry.errors import StageFailedError, ValidationError

if TYPE_CHECKING:
    from crucible_model_registry.registry import Registry, VersionLike

__all__ = [
    "Context",
    "ContextLike",
    "MODEL_VERSION",
    "Promote",
    "Register",
    "Stage",
    "StageFailedError",
    "StageSchema",
    "TypeSpec",
    "check_options",
    "check_schema",
    "run_pipeline",
]

TypeSpec = str | tuple[str, object]
"""An option's type: ``"string"``, ``"integer"``, ``"float"``, ``"boolean"``, ``"map"``,
``"list"``, ``("enum", [members...])`` or ``("list", inner_spec)``."""

_SCALAR_SPECS = frozenset({"string", "integer", "float", "boolean", "map", "list"})

MODEL_VERSION = "model_version"
"""The context artifact holding the version Register recorded (and Promote moved)."""


class StageSchema(TypedDict):
    """What ``Stage.describe()`` returns: the stage's name and its options."""

    name: str
    description: str
    required: list[str]
    optional: list[str]
    types: dict[str, TypeSpec]


# --- context ----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Context:
    """What a pipeline carries from stage to stage; the ``put_*`` methods return it for chaining.

    Attributes:
        experiment_id: the experiment this run belongs to.
        run_id: this training run.
        metrics: metric name to finite number; Register records them on the version.
        artifacts: named results (``training_config``, ``checkpoint_id``,
            ``model_version``, ...).
        assigns: anything else stages want to hand on.
    """

    experiment_id: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, object] = dataclasses.field(default_factory=dict)
    assigns: dict[str, object] = dataclasses.field(default_factory=dict)

    def put_artifact(self, key: str, value: object) -> Context:
        """Store a named artifact, replacing any under that key."""
        self.artifacts[key] = value
        return self

    def get_artifact(self, key: str, default: object = None) -> object:
        """The artifact stored under ``key``, else ``default``."""
        return self.artifacts.get(key, default)

    def put_metric(self, name: str, value: float) -> Context:
        """Record a metric.

        Raises:
            ValidationError: the value is not a finite number (booleans are refused).
        """
        self.metrics.update(check_metrics({name: value}))
        return self

    def get_metric(self, name: str, default: float | None = None) -> float | None:
        """The metric called ``name``, else ``default``."""
        return self.metrics.get(name, default)

    def assign(self, key: str, value: object) -> Context:
        """Hand a value on to later stages under ``key``."""
        self.assigns[key] = value
        return self


ContextLike = Context | MutableMapping[str, object]
"""A :class:`Context`, or a plain dict with the same keys."""

C = TypeVar("C", bound=ContextLike)


def _get_artifact(context: ContextLike, key: str) -> object:
    if isinstance(context, Context):
        return context.artifacts.get(key)
    artifacts = context.get("artifacts")
    return artifacts.get(key) if isinstance(artifacts, Mapping) else None


def _put_artifact(context: ContextLike, key: str, value: object) -> None:
    if isinstance(context, Context):
        context.artifacts[key] = value
        return
    artifacts = context.get("artifacts")
    if artifacts is None:
        context["artifacts"] = {key: value}
    elif isinstance(artifacts, MutableMapping):
        artifacts[key] = value
    else:
        raise ValidationError.single("context.artifacts", "must be a dict of named artifacts")


def _metrics(context: ContextLike) -> Mapping[str, object]:
    metrics = context.metrics if isinstance(context, Context) else context.get("metrics")
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ValidationError.single("context.metrics", "must be a dict of metric values")
    return metrics


# --- the protocol and option checks -----------------------------------------------------


@runtime_checkable
class Stage(Protocol):
    """One step of a pipeline: it declares its options and turns a context into the next."""

    def describe(self, opts: Mapping[str, object] | None = None) -> StageSchema:
        """The stage's name, description and options (required, optional, their types)."""
        ...

    def run(self, context: ContextLike, opts: Mapping[str, object]) -> ContextLike:
        """Do the stage's work and return the context for the next stage."""
        ...


def _is_type_spec(spec: object) -> bool:
    if isinstance(spec, str):
        return spec in _SCALAR_SPECS
    if isinstance(spec, tuple) and len(spec) == 2:
        kind, arg = spec
        if kind == "enum":
            return isinstance(arg, list | tuple) and len(arg) > 0
        if kind == "list":
            return _is_type_spec(arg)
    return False


def check_schema(schema: object) -> StageSchema:
    """Check what a stage's ``describe()`` returned.

    Returns:
        The schema, unchanged.

    Raises:
        ValidationError: naming every problem: a missing or mistyped key, an option both
            required and optional, or an option without a valid type spec.
    """
    if not isinstance(schema, Mapping):
        raise ValidationError.single("schema", "describe() must return a mapping")
    errors: dict[str, list[str]] = {}
    for key in ("name", "description"):
        if not isinstance(schema.get(key), str) or not schema.get(key):
            errors.setdefault(key, []).append("must be a non-empty string")
    types = schema.get("types")
    if not isinstance(types, Mapping):
        errors.setdefault("types", []).append("must map every option to its type spec")
        types = {}
    options: dict[str, list[str]] = {}
    for key in ("required", "optional"):
        names = schema.get(key)
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            errors.setdefault(key, []).append("must be a list of option names")
            names = []
        options[key] = list(names)
    both = set(options["required"]) & set(options["optional"])
    if both:
        errors.setdefault("required", []).append(
            f"options {sorted(both)} are also listed as optional"
        )
    for name in [*options["required"], *options["optional"]]:
        if not _is_type_spec(types.get(name)):
            errors.setdefault(f"types.{name}", []).append(f"{types.get(name)!r} is not a type spec")
    for name in set(types) - set(options["required"]) - set(options["optional"]):
        errors.setdefault(f"types.{name}", []).append("is neither required nor optional")
    if errors:
        raise ValidationError(errors)
    return cast("StageSchema", schema)


def _type_problem(value: object, spec: TypeSpec) -> str | None:
    if isinstance(spec, tuple):
        kind, arg = spec
        if kind == "enum":
            members = cast("Sequence[object]", arg)
            if value in members:
                return None
            return f"{value!r} is not one of {', '.join(map(str, members))}"
        if not isinstance(value, list | tuple):
            return f"{value!r} is not a list"
        for i, item in enumerate(value):
            problem = _type_problem(item, cast("TypeSpec", arg))
            if problem is not None:
                return f"item {i}: {problem}"
        return None
    ok = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ),
        "boolean": lambda v: isinstance(v, bool),
        "map": lambda v: isinstance(v, Mapping),
        "list": lambda v: isinstance(v, list | tuple),
    }[spec](value)
    article = "an" if spec[0] in "aeiou" else "a"
    return None if ok else f"{value!r} is not {article} {spec}"


def _option_problems(schema: StageSchema, opts: Mapping[str, object]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for name in schema["required"]:
        if opts.get(name) is None:
            problems[name] = "is required"
    known = {*schema["required"], *schema["optional"]}
    for name, value in opts.items():
        if name not in known:
            problems[name] = f"is not an option; known: {', '.join(sorted(known))}"
        elif value is not None:
            problem = _type_problem(value, schema["types"][name])
            if problem is not None:
                problems[name] = problem
    return problems


def check_options(stage: Stage, opts: Mapping[str, object] | None) -> dict[str, object]:
    """Check options against the stage's ``describe()``; None values count as not given.

    Returns:
        The options without the None values.

    Raises:
        ValidationError: every missing required option, unknown option and value of the
            wrong type, each under its option's name.
    """
    opts = {} if opts is None else opts
    if not isinstance(opts, Mapping):
        raise ValidationError.single("opts", "stage options must be a mapping")
    problems = _option_problems(check_schema(stage.describe(opts)), opts)
    if problems:
        raise ValidationError({name: [problem] for name, problem in problems.items()})
    return {name: value for name, value in opts.items() if value is not None}


def run_pipeline(
    context: C, stages: Iterable[tuple[Stage | type[Stage], Mapping[str, object] | None]]
) -> C:
    """Check every stage's options, then run the stages in order.

    Args:
        context: a :class:`Context` or a plain dict with its keys.
        stages: ``(stage, options)`` pairs; a stage class with no required constructor
            arguments may stand for an instance.

    Returns:
        The context the last stage returned.

    Raises:
        ValidationError: before anything runs, listing every problem under
            ``stages[<index>].<option>`` with the stage's name in the message.
        StageFailedError: a stage raised; it names the stage and carries the error.
    """
    plan: list[tuple[Stage, str, dict[str, object]]] = []
    errors: dict[str, list[str]] = {}
    for index, (candidate, opts) in enumerate(stages):
        try:
            stage = candidate() if isinstance(candidate, type) else candidate
        except TypeError as exc:
            errors[f"stages[{index}]"] = [f"{candidate!r} cannot be made without arguments: {exc}"]
            continue
        if not isinstance(stage, Stage):
            errors[f"stages[{index}]"] = [f"{candidate!r} has no describe() and run()"]
            continue
        try:
            schema = check_schema(stage.describe(opts))
        except ValidationError as exc:
            errors[f"stages[{index}]"] = [f"describe() is invalid: {exc}"]
            continue
        given = {} if opts is None else opts
        if not isinstance(given, Mapping):
            errors[f"stages[{index}]"] = [f"{schema['name']}: options must be a mapping"]
            continue
        for name, problem in _option_problems(schema, given).items():
            errors[f"stages[{index}].{name}"] = [f"{schema['name']}: {problem}"]
        plan.append((stage, schema["name"], {k: v for k, v in given.items() if v is not None}))
    if errors:
        raise ValidationError(errors)
    current: ContextLike = context
    for index, (stage, name, opts) in enumerate(plan):
        try:
            result = stage.run(current, opts)
        except Exception as exc:
            raise StageFailedError(name, index, exc) from exc
        # A stage that updates the context in place and forgets to return it still counts.
        if result is not None:
            current = result
    return cast("C", current)


# --- Register and Promote ---------------------------------------------------------------

_STAGE_INPUTS = [s.value for s in enums.Stage] + ["development"]
_RELATIONSHIPS = [r.value for r in enums.Relationship] + [
    "fine_tune",
    "distillation",
    "merge",
    "quantization",
    "adapter",
]
# Checkpoint ids name their store by URI scheme: s3://bucket/key, hf://org/repo, file:///x.
_SCHEME_BACKENDS = {"s3": "s3", "hf": "huggingface", "file": "local"}


def _checkpoint_backend(checkpoint_id: str) -> str:
    """The storage backend a checkpoint id points into, from its URI scheme."""
    scheme, sep, _ = checkpoint_id.partition("://")
    if sep and scheme:
        return _SCHEME_BACKENDS.get(scheme.lower(), scheme.lower())
    return "local" if checkpoint_id.startswith("/") else "external"


class Register:
    """Record the context's training run as a new version (pipeline stage ``model_register``).

    Options left out are taken from the context: the ``training_config`` and
    ``checkpoint_id`` artifacts (the checkpoint becomes an artifact reference) and the
    context's metrics (option ``metrics`` win on the same name). The version is stored as
    the ``model_version`` artifact.

    Args:
        registry: the registry to record in; by default the one ``get_registry()`` gives at
            run time.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self._registry = registry

    def describe(self, opts: Mapping[str, object] | None = None) -> StageSchema:
        """The options of ``model_register``."""
        return {
            "name": "model_register",
            "description": (
                "Register the trained model as a new version, with the context's training "
                "config, checkpoint and metrics; stores it as the model_version artifact."
            ),
            "required": ["model_name", "recipe", "base_model"],
            "optional": [
                "version",
                "training_config",
                "checkpoint_id",
                "checkpoint_type",
                "checkpoint_backend",
                "metrics",
                "tags",
                "description",
                "artifacts",
                "parents",
                "lineage_type",
                "on_duplicate",
            ],
            "types": {
                "model_name": "string",
                "recipe": "string",
                "base_model": "string",
                "version": "string",
                "training_config": "map",
                "checkpoint_id": "string",
                "checkpoint_type": ("enum", [t.value for t in enums.ArtifactType]),
                "checkpoint_backend": "string",
                "metrics": "map",
                "tags": ("list", "string"),
                "description": "string",
                "artifacts": ("list", "map"),
                "parents": ("list", "string"),
                "lineage_type": ("enum", _RELATIONSHIPS),
                "on_duplicate": ("enum", ["raise", "return"]),
            },
        }

    def run(self, context: ContextLike, opts: Mapping[str, object]) -> ContextLike:
        """Register the version and store it as the ``model_version`` artifact.

        Raises:
            ValidationError: bad options, or no training config in options or context.
            DuplicateVersionError: the version string is taken.
            DuplicateConfigError: this training run is registered already (unless
                ``on_duplicate`` is ``"return"``).
        """
        given = check_options(self, opts)
        fields: dict[str, object] = {
            key: given[key]
            for key in (
                "model_name",
                "version",
                "recipe",
                "base_model",
                "tags",
                "description",
                "parents",
                "lineage_type",
                "on_duplicate",
            )
            if key in given
        }
        config = given.get("training_config", _get_artifact(context, "training_config"))
        if config is not None:
            fields["training_config"] = config
        fields["metrics"] = {
            **_metrics(context),
            **cast("Mapping[str, object]", given.get("metrics", {})),
        }
        artifacts = list(cast("list[object]", given.get("artifacts", [])))
        checkpoint = given.get("checkpoint_id", _get_artifact(context, "checkpoint_id"))
        if checkpoint is not None:
            path = str(checkpoint)
            artifacts.append(
                {
                    "type": given.get("checkpoint_type", enums.ArtifactType.CHECKPOINT.value),
                    "storage_backend": given.get("checkpoint_backend", _checkpoint_backend(path)),
                    "storage_path": path,
                }
            )
        if artifacts:
            fields["artifacts"] = artifacts
        registry = self._registry or get_registry()
        version = registry.register(fields)
        _put_artifact(context, MODEL_VERSION, version)
        return context


class Promote:
    """Move a version to another stage (pipeline stage ``model_promote``).

    Promotes the ``version`` option, else the context's ``model_version`` artifact (what
    Register stored), and stores the promoted version back as ``model_version``.

    Args:
        registry: the registry to use; by default the one ``get_registry()`` gives at run
            time.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self._registry = registry

    def describe(self, opts: Mapping[str, object] | None = None) -> StageSchema:
        """The options of ``model_promote``."""
        return {
            "name": "model_promote",
            "description": (
                "Promote a version (the version option, else the context's model_version "
                "artifact) to another stage."
            ),
            "required": ["stage"],
            "optional": ["version", "reason", "archive_existing"],
            "types": {
                "stage": ("enum", _STAGE_INPUTS),
                "version": "string",
                "reason": "string",
                "archive_existing": "boolean",
            },
        }

    def run(self, context: ContextLike, opts: Mapping[str, object]) -> ContextLike:
        """Promote the version and store the result as the ``model_version`` artifact.

        Raises:
            ValidationError: bad options, or no version in options or context.
            NotFoundError: the version does not exist.
            PromotionDeniedError: the model's promotion policy forbids the change.
        """
        given = check_options(self, opts)
        version = given.get("version", _get_artifact(context, MODEL_VERSION))
        if version is None:
            raise ValidationError.single(
                "version",
                "give the version option, or run model_register first so the context "
                "holds a model_version artifact",
            )
        registry = self._registry or get_registry()
        promoted = registry.promote(
            cast("VersionLike", version),
            cast("str", given["stage"]),
            reason=cast("str | None", given.get("reason")),
            archive_existing=bool(given.get("archive_existing", False)),
        )
        _put_artifact(context, MODEL_VERSION, promoted)
        return context
