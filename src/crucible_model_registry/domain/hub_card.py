"""What a Hugging Face model card says, as registration fields and lineage.

The Hub's card metadata (YAML front matter) becomes:

- ``base_model`` (one id or a list) and ``base_model_relation`` (``finetune``, ``adapter``,
  ``quantized``, ``merge``): the lineage; several bases without a relation mean a merge.
- ``model-index`` results: metrics named ``<dataset>/<metric type>`` (the dataset's
  ``name``, else its ``type``); values that are not finite numbers are left out.
- ``tags``, ``license`` (as the tag ``license:<id>``), ``pipeline_tag``, ``library_name``:
  tags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from crucible_model_registry.domain.enums import ArtifactType, Relationship
from crucible_model_registry.domain.rules import MAX_TAG

__all__ = [
    "HUB_RECIPE",
    "artifact_type_for",
    "base_models",
    "card_metrics",
    "card_relationship",
    "card_tags",
]

HUB_RECIPE = "huggingface-hub"
"""The recipe of versions imported from the Hub (their training recipe is not known)."""

_RELATIONS = {
    "finetune": Relationship.FINE_TUNED_FROM,
    "adapter": Relationship.ADAPTER_OF,
    "quantized": Relationship.QUANTIZED_FROM,
    "merge": Relationship.MERGED_FROM,
}


def base_models(card: Mapping[str, Any]) -> list[str]:
    """The card's base model ids, in order, without duplicates."""
    value = card.get("base_model")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return list(dict.fromkeys(v.strip() for v in items if isinstance(v, str) and v.strip()))


def card_relationship(card: Mapping[str, Any]) -> Relationship:
    """How the model was made from its bases (``base_model_relation``, else a guess)."""
    relation = card.get("base_model_relation")
    if isinstance(relation, str) and relation.lower() in _RELATIONS:
        return _RELATIONS[relation.lower()]
    return Relationship.MERGED_FROM if len(base_models(card)) > 1 else Relationship.FINE_TUNED_FROM


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def card_metrics(card: Mapping[str, Any]) -> dict[str, float]:
    """Metrics from the card's ``model-index`` results."""
    metrics: dict[str, float] = {}
    index = card.get("model-index") or card.get("model_index")
    for entry in index if isinstance(index, list) else []:
        results = entry.get("results") if isinstance(entry, Mapping) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, Mapping):
                continue
            dataset = result.get("dataset")
            if not isinstance(dataset, Mapping):
                dataset = {}
            where = str(dataset.get("name") or dataset.get("type") or "unknown")
            found = result.get("metrics")
            for metric in found if isinstance(found, list) else []:
                if not isinstance(metric, Mapping):
                    continue
                value = _number(metric.get("value"))
                kind = metric.get("type") or metric.get("name")
                if value is not None and isinstance(kind, str) and kind:
                    metrics[f"{where}/{kind}"[:255]] = value
    return metrics


def card_tags(card: Mapping[str, Any]) -> list[str]:
    """The card's tags, its license as ``license:<id>``, pipeline tag and library name."""
    tags: list[str] = []
    raw = card.get("tags")
    tags += [t for t in (raw if isinstance(raw, list) else [raw]) if isinstance(t, str)]
    licenses = card.get("license")
    for item in licenses if isinstance(licenses, list) else [licenses]:
        if isinstance(item, str) and item:
            tags.append(f"license:{item}")
    for key in ("pipeline_tag", "library_name"):
        if isinstance(card.get(key), str) and card[key]:
            tags.append(str(card[key]))
    return [t for t in dict.fromkeys(t.strip() for t in tags) if t and len(t) <= MAX_TAG]


_TYPES_BY_SUFFIX = {
    ".safetensors": ArtifactType.CHECKPOINT,
    ".bin": ArtifactType.CHECKPOINT,
    ".pt": ArtifactType.CHECKPOINT,
    ".pth": ArtifactType.CHECKPOINT,
    ".ckpt": ArtifactType.CHECKPOINT,
    ".h5": ArtifactType.CHECKPOINT,
    ".gguf": ArtifactType.GGUF,
    ".onnx": ArtifactType.ONNX,
    ".engine": ArtifactType.TENSORRT,
    ".plan": ArtifactType.TENSORRT,
}


def artifact_type_for(path: str) -> ArtifactType:
    """The artifact type of a repository file, from its name."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.startswith("adapter_") or "/adapter" in path.lower():
        return ArtifactType.ADAPTER
    if name.startswith(("tokenizer", "vocab", "merges", "special_tokens_map")):
        return ArtifactType.TOKENIZER
    if name.endswith(".json") and "config" in name:
        return ArtifactType.CONFIG
    suffix = name[name.rfind(".") :] if "." in name else ""
    return _TYPES_BY_SUFFIX.get(suffix, ArtifactType.OTHER)
