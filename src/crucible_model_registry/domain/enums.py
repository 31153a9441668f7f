"""Stage, Relationship and ArtifactType, and the input aliases each accepts."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from crucible_model_registry.errors import ValidationError

__all__ = ["ArtifactType", "Relationship", "Stage", "parse_enum"]


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
        ValidationError: naming ``field`` and every accepted value.
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
    choices = [m.value for m in enum] + sorted(_ALIASES.get(enum, {}))
    raise ValidationError.single(field, f"{value!r} is not one of {', '.join(choices)}")
