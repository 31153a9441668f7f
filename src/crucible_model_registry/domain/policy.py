"""PromotionPolicy: which stage changes a model allows, the gates they pass, exclusive stages."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, get_args

from crucible_model_registry.domain.access import DEFAULT_PROTECTED as _DEFAULT_PROTECTED
from crucible_model_registry.domain.enums import Stage, parse_enum
from crucible_model_registry.domain.query_conditions import describe
from crucible_model_registry.domain.query_spec import QuerySpec, spec_of
from crucible_model_registry.errors import ValidationError

__all__ = [
    "GateTags",
    "PolicyChange",
    "PolicyCondition",
    "PromotionCheck",
    "PromotionPolicy",
    "allowed_sources_condition",
    "allowed_sources_unmet",
    "distinct_promoter_condition",
    "distinct_promoter_unmet",
]

_FIELDS = ("allowed", "gates", "exclusive", "gate_tags", "protected", "require_distinct_promoter")


GateTags = Literal["version", "version_or_model"]
"""Whose tags a gate's tag condition looks at: the version's own, or its model's too."""
_GATE_TAGS: tuple[str, ...] = get_args(GateTags)


@dataclasses.dataclass(frozen=True, slots=True, init=False, repr=False)
class PromotionPolicy:
    """The rules every promotion of one model must follow, stored with the model.

    ``to_dict()`` gives the stored JSON form and ``from_dict()`` reads it back, or a policy
    file's table (where a gate may be written as a filter map). Stages are given as
    :class:`Stage` members or their names (``development`` is ``experiment``); the policy
    keeps them as members. All three fields default to empty, and an empty policy allows
    every promotion.

    Attributes:
        allowed: target stage -> the stages a version may be promoted from into it.
            Only the targets named are restricted.
        gates: target stage -> the filter conditions a version must match, when it is
            promoted, to enter that stage: given as a ``Query`` (or its spec, or a filter
            map such as ``{"min_accuracy": 0.9}``) without ordering, limit, offset or
            lineage predicates; kept as the spec. Stage conditions in a gate judge the
            stage the version is leaving.
        exclusive: stages that hold at most one version of the model: promoting into one
            archives the incumbent in the same transaction.
        gate_tags: whose tags a gate's tag condition looks at: ``"version"`` (the
            default) the promoted version's own tags only, ``"version_or_model"`` its
            model's tags too (as queries do).
        protected: stages that only a principal with the ``promote`` role may move a
            version into or out of, or an alias onto or off a version in (default
            ``production``; a model with no stored policy has the default too).
        require_distinct_promoter: stages a version may not be promoted into by the
            principal that registered it (four eyes). A version whose registrant is not
            known (registered before the registry recorded it) may not be promoted into
            them at all.
    """

    allowed: dict[Stage, tuple[Stage, ...]]
    gates: dict[Stage, QuerySpec]
    exclusive: tuple[Stage, ...]
    gate_tags: GateTags
    protected: tuple[Stage, ...]
    require_distinct_promoter: tuple[Stage, ...]

    def __init__(
        self,
        allowed: Mapping[Stage | str, Iterable[Stage | str]] | None = None,
        gates: Mapping[Stage | str, Any] | None = None,
        exclusive: Iterable[Stage | str] | None = None,
        gate_tags: GateTags = "version",
        *,
        protected: Iterable[Stage | str] | None = None,
        require_distinct_promoter: Iterable[Stage | str] | None = None,
    ) -> None:
        errors: dict[str, list[str]] = {}
        object.__setattr__(self, "allowed", _allowed(allowed, errors))
        object.__setattr__(self, "gates", _gates(gates, errors))
        object.__setattr__(self, "exclusive", _exclusive(exclusive, errors))
        if gate_tags not in _GATE_TAGS:
            errors.setdefault("gate_tags", []).append(f"must be one of {', '.join(_GATE_TAGS)}")
        object.__setattr__(self, "gate_tags", gate_tags)
        object.__setattr__(
            self,
            "protected",
            _DEFAULT_PROTECTED
            if protected is None
            else _stage_list(protected, "protected", errors),
        )
        object.__setattr__(
            self,
            "require_distinct_promoter",
            _stage_list(require_distinct_promoter, "require_distinct_promoter", errors),
        )
        if errors:
            raise ValidationError(errors)

    def __hash__(self) -> int:
        return hash(
            (
                tuple(self.allowed.items()),
                tuple(self.gates.items()),
                self.exclusive,
                self.gate_tags,
                self.protected,
                self.require_distinct_promoter,
            )
        )

    def __repr__(self) -> str:
        allowed = {t.value: [s.value for s in sources] for t, sources in self.allowed.items()}
        gates = {t.value: describe(g.where) for t, g in self.gates.items()}
        exclusive = [s.value for s in self.exclusive]
        protected = [s.value for s in self.protected]
        distinct = [s.value for s in self.require_distinct_promoter]
        return (
            f"PromotionPolicy(allowed={allowed!r}, gates={gates!r}, exclusive={exclusive!r}, "
            f"gate_tags={self.gate_tags!r}, protected={protected!r}, "
            f"require_distinct_promoter={distinct!r})"
        )

    @property
    def is_empty(self) -> bool:
        """Does this policy allow every promotion?"""
        return not (
            self.allowed
            or self.gates
            or self.exclusive
            or self.require_distinct_promoter
            or self.protected != _DEFAULT_PROTECTED
        )

    def to_dict(self) -> dict[str, Any]:
        """This policy as plain JSON values (the form it is stored in).

        ``gate_tags``, ``protected`` and ``require_distinct_promoter`` appear only when
        they are not the defaults, so a policy stored before they existed reads back as it
        is written now.
        """
        out: dict[str, Any] = {
            "allowed": {t.value: [s.value for s in sources] for t, sources in self.allowed.items()},
            "gates": {t.value: _gate_to_json(g) for t, g in self.gates.items()},
            "exclusive": [s.value for s in self.exclusive],
        }
        if self.gate_tags != "version":
            out["gate_tags"] = self.gate_tags
        if self.protected != _DEFAULT_PROTECTED:
            out["protected"] = [s.value for s in self.protected]
        if self.require_distinct_promoter:
            out["require_distinct_promoter"] = [s.value for s in self.require_distinct_promoter]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromotionPolicy:
        """A policy from :meth:`to_dict`'s form, or a policy file's table.

        Raises:
            ValidationError: unknown keys, stages or gate conditions.
        """
        if not isinstance(data, Mapping):
            raise ValidationError.single(
                "policy", "must be a mapping with allowed, gates, exclusive"
            )
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValidationError.single(
                "policy", f"unknown key(s) {', '.join(map(str, unknown))}; use {', '.join(_FIELDS)}"
            )
        return cls(
            allowed=data.get("allowed"),
            gates=data.get("gates"),
            exclusive=data.get("exclusive"),
            gate_tags=data.get("gate_tags", "version"),
            protected=data.get("protected"),
            require_distinct_promoter=data.get("require_distinct_promoter"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyChange:
    """One change of a model's promotion policy: what it was, what it became, who, when.

    ``old`` is None when the model had no policy before, ``new`` when it was removed.
    """

    old: PromotionPolicy | None
    new: PromotionPolicy | None
    actor: str | None
    at: datetime


def distinct_promoter_condition(
    policy: PromotionPolicy, target: Stage, *, registered_by: str | None, promoter: str | None
) -> PolicyCondition | None:
    """The four-eyes rule (``require_distinct_promoter``) for this promotion, or None."""
    if target not in policy.require_distinct_promoter:
        return None
    rule = f"require_distinct_promoter: {target.value}"
    if registered_by is None:
        return PolicyCondition(
            f"{rule}: the version's registrant is not recorded (registered before the "
            "registry kept it), so nobody can be shown to be a second pair of eyes",
            met=False,
        )
    if promoter is not None and promoter == registered_by:
        return PolicyCondition(
            f"{rule}: {promoter!r} registered this version and may not promote it there",
            met=False,
        )
    return PolicyCondition(
        f"{rule}: registered by {registered_by!r}, promoted by someone else", met=True
    )


def distinct_promoter_unmet(
    policy: PromotionPolicy, target: Stage, *, registered_by: str | None, promoter: str | None
) -> list[str]:
    """The unmet four-eyes rule (``require_distinct_promoter``) for this promotion, if any."""
    condition = distinct_promoter_condition(
        policy, target, registered_by=registered_by, promoter=promoter
    )
    return [] if condition is None or condition.met else [condition.text]


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyCondition:
    """One condition a promotion must meet, as a sentence, and whether the version meets it."""

    text: str
    met: bool


@dataclasses.dataclass(frozen=True, slots=True)
class PromotionCheck:
    """What promoting a version to ``target`` would meet and fail, judged without promoting.

    ``conditions`` are the policy's conditions for this move in the order a denial lists
    them (the ``allowed`` rule, then each gate condition, then the incumbents' moves);
    the unmet ones are exactly a :class:`PromotionDeniedError`'s ``unmet`` at that moment.
    Empty when the model has no policy or the version is in ``target`` already.

    Attributes:
        archives_incumbent: promoting archives the versions now in ``target`` (an
            exclusive stage, or ``archive_existing``).
    """

    version_ref: str
    from_stage: Stage
    target: Stage
    conditions: list[PolicyCondition]
    archives_incumbent: bool

    @property
    def allowed(self) -> bool:
        """Would the promotion be allowed now?"""
        return all(c.met for c in self.conditions)

    @property
    def unmet(self) -> list[str]:
        """The failed conditions' sentences, as a denial would list them."""
        return [c.text for c in self.conditions if not c.met]


def allowed_sources_condition(
    policy: PromotionPolicy, source: Stage, target: Stage
) -> PolicyCondition | None:
    """The ``allowed`` condition for ``source -> target``, or None when ``target`` is free."""
    sources = policy.allowed.get(target)
    if sources is None:
        return None
    if not sources:
        return PolicyCondition(f"{target.value} may not be entered from any stage", met=False)
    names = ", ".join(s.value for s in sources)
    if source in sources:
        return PolicyCondition(f"{target.value} may be entered from {names}", met=True)
    return PolicyCondition(
        f"{target.value} may be entered only from {names}, and the version is in {source.value}",
        met=False,
    )


def allowed_sources_unmet(policy: PromotionPolicy, source: Stage, target: Stage) -> list[str]:
    """The unmet ``allowed`` condition for ``source -> target`` as a sentence, if any."""
    condition = allowed_sources_condition(policy, source, target)
    return [] if condition is None or condition.met else [condition.text]


def _stage(value: object, field: str, errors: dict[str, list[str]]) -> Stage | None:
    try:
        return parse_enum(Stage, value, field=field)
    except ValidationError as exc:
        for key, messages in exc.errors.items():
            errors.setdefault(key, []).extend(messages)
        return None


def _stage_list(value: object, field: str, errors: dict[str, list[str]]) -> tuple[Stage, ...]:
    if value is None:
        return ()
    if isinstance(value, str | Stage) or not isinstance(value, Iterable):
        errors.setdefault(field, []).append("must be a list of stage names")
        return ()
    found = {_stage(item, field, errors) for item in value}
    # Kept in the enum's order, so that equal policies compare and serialise equal.
    return tuple(s for s in Stage if s in found)


def _targets(value: object, field: str, errors: dict[str, list[str]]) -> dict[Stage, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.setdefault(field, []).append("must be a mapping of target stage to its rule")
        return {}
    out: dict[Stage, Any] = {}
    for key, rule in value.items():
        target = _stage(key, field, errors)
        if target is not None:
            if target in out:
                errors.setdefault(field, []).append(f"{target.value} is named twice")
            out[target] = rule
    return {t: out[t] for t in Stage if t in out}


def _allowed(value: object, errors: dict[str, list[str]]) -> dict[Stage, tuple[Stage, ...]]:
    return {
        target: _stage_list(sources, f"allowed.{target.value}", errors)
        for target, sources in _targets(value, "allowed", errors).items()
    }


def _gates(value: object, errors: dict[str, list[str]]) -> dict[Stage, QuerySpec]:
    out: dict[Stage, QuerySpec] = {}
    for target, gate in _targets(value, "gates", errors).items():
        field = f"gates.{target.value}"
        try:
            out[target] = _gate_spec(gate, field)
        except ValidationError as exc:
            for key, messages in exc.errors.items():
                errors.setdefault(key, []).extend(messages)
    return out


def _exclusive(value: object, errors: dict[str, list[str]]) -> tuple[Stage, ...]:
    stages = _stage_list(value, "exclusive", errors)
    if Stage.ARCHIVED in stages:
        errors.setdefault("exclusive", []).append(
            "archived cannot be exclusive: it is where exclusive stages send their incumbents"
        )
    return stages


def _gate_spec(value: object, field: str) -> QuerySpec:
    # A mapping is either a stored spec (to_json's form, which carries "version") or, as
    # in a policy file, a filter map such as {"min_accuracy": 0.9}.
    try:
        if isinstance(value, Mapping) and "version" in value and "where" in value:
            spec = QuerySpec.from_json(value)
        else:
            spec = spec_of(value)
    except ValidationError as exc:
        raise ValidationError(
            {f"{field}.{key}" if key != "filters" else field: m for key, m in exc.errors.items()}
        ) from None
    if spec.order or spec.limit is not None or spec.offset:
        raise ValidationError.single(
            field, "a gate is a filter condition: drop its ordering, limit and offset"
        )
    if spec.has_lineage():
        raise ValidationError.single(
            field, "a gate cannot use lineage predicates (where_descendant_of/where_ancestor_of)"
        )
    return QuerySpec(where=spec.where)


def _gate_to_json(spec: QuerySpec) -> dict[str, Any]:
    return spec.to_json()
