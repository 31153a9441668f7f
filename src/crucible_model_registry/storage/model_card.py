"""The Hub model card: what the registry writes into a repository's ``README.md``.

:func:`merge_model_card` folds one version's record into the card's YAML metadata, in the
keys the Hub understands (``base_model``, ``base_model_relation``, ``metrics``) and under
:data:`CARD_KEY`, keeping everything else. ``HuggingFaceStorage.push_model_card`` reads,
merges and commits it. ``huggingface_hub`` and ``yaml`` are imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crucible_model_registry.domain.enums import Relationship, parse_enum
from crucible_model_registry.errors import StorageError

__all__ = ["CARD_KEY", "CARD_NAME", "HUB_RELATIONS", "merge_model_card"]

CARD_NAME = "README.md"
"""The model card's file in the repository."""

CARD_KEY = "crucible_model_registry"
"""The model card metadata key under which each pushed version's record is kept."""

HUB_RELATIONS: Mapping[Relationship, str] = {
    Relationship.FINE_TUNED_FROM: "finetune",
    Relationship.ADAPTER_OF: "adapter",
    Relationship.QUANTIZED_FROM: "quantized",
    Relationship.MERGED_FROM: "merge",
}
"""Our relationships that the Hub's ``base_model_relation`` can express; others are omitted."""


def merge_model_card(
    existing: str | None,
    *,
    model_name: str,
    version: str,
    base_models: Sequence[str] = (),
    relationship: str | Relationship | None = None,
    metrics: Mapping[str, float] | None = None,
    recipe: str | None = None,
    config_hash: str | None = None,
) -> str:
    """Fold one version's metadata into a model card's text (or a new card if None).

    What changes, and only this:

    - ``base_model``: set when ``base_models`` is not empty: one id, or a list for several
      or for a merge; ``base_model_relation``: set from ``relationship`` when the Hub has a
      word for it (see :data:`HUB_RELATIONS`), removed otherwise, since it describes the
      replaced ``base_model``.
    - ``metrics``: the Hub's list of metric names gains the version's metric names.
    - ``crucible_model_registry``: an entry ``"<model_name>@<version>"`` with the recipe,
      config hash, metric values, base models and relationship; other entries stay.

    Every other metadata key and the Markdown body are kept as they are.

    Raises:
        ValidationError: ``relationship`` is not a known relationship.
        StorageError: the existing card's metadata block cannot be parsed.
    """
    import yaml
    from huggingface_hub import ModelCard

    relation = (
        None
        if relationship is None
        else parse_enum(Relationship, relationship, field="relationship")
    )
    if existing is None:
        existing = (
            f"---\n---\n\n# {model_name}\n\nVersions registered with crucible-model-registry.\n"
        )
    try:
        card = ModelCard(existing)
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise StorageError(
            f"the repository's {CARD_NAME} has metadata that cannot be parsed ({exc}); "
            "fix the card's YAML block, it was left unchanged",
            backend="huggingface",
        ) from exc
    data = card.data
    bases = list(dict.fromkeys(base_models))
    if bases:
        merge = relation is Relationship.MERGED_FROM
        data["base_model"] = bases if merge or len(bases) > 1 else bases[0]
        hub_relation = HUB_RELATIONS.get(relation) if relation is not None else None
        if hub_relation is not None:
            data["base_model_relation"] = hub_relation
        else:
            data.pop("base_model_relation", None)
    metric_values = dict(metrics or {})
    if metric_values:
        names = data.get("metrics")
        names = list(names) if isinstance(names, list) else []
        data["metrics"] = [*names, *(m for m in metric_values if m not in names)]
    record: dict[str, Any] = {"model_name": model_name, "version": version}
    if recipe is not None:
        record["recipe"] = recipe
    if config_hash is not None:
        record["config_hash"] = config_hash
    if metric_values:
        record["metrics"] = {k: float(v) for k, v in metric_values.items()}
    if bases:
        record["base_models"] = bases
    if relation is not None:
        record["relationship"] = relation.value
    ours = data.get(CARD_KEY)
    entries = dict(ours) if isinstance(ours, Mapping) else {}
    entries[f"{model_name}@{version}"] = record
    data[CARD_KEY] = entries
    return str(card.content)
