"""A small registry for the UI tests and the README screenshot: a lineage with a merge,
a promotion policy with a gate, aliases, tags and an artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import crucible_model_registry as cmr
from crucible_model_registry import Registry

MODEL = "llama-3.1-8b-sft"
BASE = "meta-llama/Llama-3.1-8B"
HOSTILE = "<script>alert('x')</script>"


@dataclass
class Seeded:
    """The versions the tests look at."""

    v1: cmr.ModelVersion
    v2: cmr.ModelVersion  # staging, accuracy 0.88: fails the production gate
    v3: cmr.ModelVersion  # staging, accuracy 0.93: passes it
    v4: cmr.ModelVersion  # merged from v3 and the other model's version; has the artifact
    other: cmr.ModelVersion


def seed(registry: Registry, artifact_dir: Path | None = None) -> Seeded:
    """Register the versions, lineage, policy, aliases and tags of the UI scenarios."""
    config = {"lr": 1e-4, "epochs": 3, "data": {"mix": "chat-v2", "tokens": 2_000_000_000}}
    v1 = registry.register(
        model_name=MODEL,
        version="1",
        recipe="sl_basic",
        base_model=BASE,
        training_config=config,
        metrics={"accuracy": 0.81, "loss": 0.62},
        tags=["sft"],
        description=f"first run {HOSTILE}",
    )
    v2 = registry.register(
        model_name=MODEL,
        version="2",
        recipe="sl_basic",
        base_model=BASE,
        training_config={**config, "lr": 5e-5},
        metrics={"accuracy": 0.88, "loss": 0.51},
        tags=["sft", "long-context"],
        parents=[v1],
        lineage_type="fine_tuned_from",
    )
    v3 = registry.register(
        model_name=MODEL,
        version="3",
        recipe="dpo",
        base_model=BASE,
        training_config={**config, "lr": 2e-5, "beta": 0.1},
        metrics={"accuracy": 0.93, "loss": 0.47, "win_rate": 0.61},
        tags=["sft", "dpo"],
        parents=[v2],
        lineage_type="dpo_trained_from",
    )
    other = registry.register(
        model_name="mistral-7b-sft",
        version="1",
        recipe="sl_basic",
        base_model="mistralai/Mistral-7B-v0.3",
        training_config={"lr": 1e-4},
        metrics={"accuracy": 0.86},
    )
    v4 = registry.register(
        model_name=MODEL,
        version="4",
        recipe="merge",
        base_model=BASE,
        training_config={"method": "ties", "weights": [0.7, 0.3]},
        metrics={"accuracy": 0.91},
        parents=[v3, other],
        lineage_type="merged_from",
    )
    registry.promote(v2, "staging", reason="eval suite v5 passed")
    registry.promote(v3, "staging", reason=f"reward model agrees {HOSTILE}")
    registry.set_alias(v3, "candidate", reason="best win rate")
    registry.set_alias(v1, "baseline")
    registry.set_promotion_policy(
        MODEL,
        cmr.PromotionPolicy(
            allowed={"production": ["staging"]},
            gates={"production": cmr.Query().where_metric("accuracy", "gte", 0.9)},
            exclusive=["production"],
        ),
    )
    if artifact_dir is not None:
        artifact_dir.mkdir(parents=True, exist_ok=True)
        weights = artifact_dir / "model.safetensors"
        weights.write_bytes(b"\0" * 4096)
        registry.upload_artifact(v4, "checkpoint", weights)
    return Seeded(
        v1=v1,
        v2=registry.get_version(v2.id),
        v3=registry.get_version(v3.id),
        v4=registry.get_version(v4.id),
        other=other,
    )
