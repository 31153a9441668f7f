"""Stage, Relationship and ArtifactType, and the input aliases each accepts."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from crucible_model_registry.errors import ValidationError

__all__ = ["ArtifactType", "Relationship", "Stage", "parse_enum", "suggest_member"]


class Stage(StrEnum):
    """Where a version stands in its life: registration puts it in ``experiment``."""

    EXPERIMENT = "experiment"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class Relationship(StrEnum):
    """How a child version was made from its parent (a lineage edge's label)."""

    FINE_TUNED_FROM = "fine_tuned_from"
    DISTILLED_FROM = "distilled_from"
    RL_TRAINED_FROM = "rl_trained_from"
    DPO_TRAINED_FROM = "dpo_trained_from"
    MERGED_FROM = "merged_from"
    QUANTIZED_FROM = "quantized_from"
    ADAPTER_OF = "adapter_of"


class ArtifactType(StrEnum):
    """What an artifact holds."""

    CHECKPOINT = "checkpoint"
    CONFIG = "config"
    TOKENIZER = "tokenizer"
    MERGED = "merged"
    GGUF = "gguf"
    ONNX = "onnx"
    TENSORRT = "tensorrt"
    ADAPTER = "adapter"
    OTHER = "other"


_ALIASES: dict[type[StrEnum], dict[str, str]] = {
    Stage: {"development": "experiment"},
    Relationship: {
        "fine_tune": "fine_tuned_from",
        "finetune": "fine_tuned_from",
        "distillation": "distilled_from",
        "merge": "merged_from",
        "quantization": "quantized_from",
        "adapter": "adapter_of",
        "dpo": "dpo_trained_from",
        "rl": "rl_trained_from",
    },
    ArtifactType: {},
}

E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: object, *, field: str) -> E:
    """Turn user input (a member or its string, any case, or an alias) into a member.

    Raises:
        ValidationError: naming ``field``, the accepted values and, when the input is close
            to one of them (a prefix or a typo), that value as a suggestion.
    """
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        key = _ALIASES.get(enum, {}).get(key, key)
        try:
            return enum(key)
        except ValueError:
            pass
    raise ValidationError.single(field, _not_a_member(enum, value))


_NOUNS: dict[type[StrEnum], str] = {
    Stage: "stage",
    Relationship: "relationship",
    ArtifactType: "artifact type",
}


def suggest_member(enum: type[StrEnum], value: object) -> str | None:
    """The member a mistyped ``value`` most likely meant: a unique prefix, else a close spelling.

    Input aliases count as spellings of the member they stand for, so ``finetuned`` suggests
    ``fine_tuned_from``; the suggestion is always the member's own name.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    import difflib

    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    spellings = {m.value: m.value for m in enum} | _ALIASES.get(enum, {})
    by_prefix = {target for spelling, target in spellings.items() if spelling.startswith(key)}
    if len(by_prefix) == 1:
        return by_prefix.pop()
    close = difflib.get_close_matches(key, list(spellings), n=1, cutoff=0.6)
    return spellings[close[0]] if close else None


def _not_a_member(enum: type[StrEnum], value: object) -> str:
    noun = _NOUNS.get(enum, enum.__name__)
    members = [m.value for m in enum]
    message = f"{value!r} is not a known {noun}"
    suggestion = suggest_member(enum, value)
    if suggestion is not None:
        message += f" (did you mean {suggestion}?)"
    message += f"; choose one of {', '.join(members)}"
    aliases = _ALIASES.get(enum, {})
    if aliases:
        # Aliases are accepted input, not further members: say what each one stands for.
        if len(aliases) == 1:
            [(alias, target)] = aliases.items()
            message += f" ({alias} is accepted for {target})"
        else:
            message += f" (or the short forms {', '.join(aliases)})"
    return message
