"""``import_hf`` against the Hub test double, with cards written the way the Hub writes them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.servers.hub import HubDouble

from crucible_model_registry import NotFoundError, Registry, Relationship

pytestmark = [
    pytest.mark.hf,
    # huggingface_hub's LFS upload (used here to publish test repositories) trips httpx's.
    pytest.mark.filterwarnings(
        "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
    ),
]

CARD = """---
license: apache-2.0
base_model: {base}
base_model_relation: adapter
library_name: peft
pipeline_tag: text-generation
tags:
- sft
- lora
model-index:
- name: {name}
  results:
  - task:
      type: text-generation
    dataset:
      name: MMLU
      type: cais/mmlu
    metrics:
    - type: accuracy
      value: 61.5
      name: MMLU accuracy
    - type: f1
      value: n/a
  - task:
      type: text-generation
    dataset:
      type: gsm8k
    metrics:
    - type: exact_match
      value: 0.42
---

# {name}

A LoRA adapter.
"""

WEIGHTS = b"\x00safetensors" * 4096


def _publish(hub: HubDouble, repo_id: str, base: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint, token=hub.token)
    api.create_repo(repo_id)
    api.upload_file(
        path_or_fileobj=CARD.format(base=base, name=repo_id).encode(),
        path_in_repo="README.md",
        repo_id=repo_id,
    )
    api.upload_file(
        path_or_fileobj=WEIGHTS, path_in_repo="adapter_model.safetensors", repo_id=repo_id
    )
    api.upload_file(
        path_or_fileobj=b'{"r": 8}', path_in_repo="adapter_config.json", repo_id=repo_id
    )


def test_card_becomes_lineage_metrics_tags_and_artifacts(
    registry: Registry, hub_server: HubDouble, hub_repo: str
):
    base = registry.register(
        model_name="org/base-7b", recipe="pretrain", base_model="scratch", training_config={}
    )
    _publish(hub_server, hub_repo, "org/base-7b")
    v = registry.import_hf(hub_repo, token=hub_server.token, endpoint=hub_server.endpoint)
    assert v.model_name == hub_repo
    assert v.base_model == "org/base-7b"
    assert v.metrics == {"MMLU/accuracy": 61.5, "gsm8k/exact_match": 0.42}
    assert set(v.tags) == {"sft", "lora", "license:apache-2.0", "peft", "text-generation"}
    [parent] = registry.get_ancestors(v)
    assert parent.id == base.id
    [edge] = registry.get_lineage(v).edges
    assert edge.relationship is Relationship.ADAPTER_OF
    by_path = {a.storage_path.rsplit("/", 1)[-1]: a for a in v.artifacts}
    assert set(by_path) == {"README.md", "adapter_model.safetensors", "adapter_config.json"}
    weights = by_path["adapter_model.safetensors"]
    assert weights.checksum == hashlib.sha256(WEIGHTS).hexdigest()
    assert weights.storage_path.startswith(f"hf://{hub_repo}@")
    assert weights.type.value == "adapter"
    # The same commit again is the same version.
    again = registry.import_hf(hub_repo, token=hub_server.token, endpoint=hub_server.endpoint)
    assert again.id == v.id
    assert len(registry.query({"model_name": hub_repo})) == 1


def test_a_base_not_in_the_registry_stays_external(
    registry: Registry, hub_server: HubDouble, hub_repo: str
):
    _publish(hub_server, hub_repo, "meta-llama/Llama-3.1-8B")
    v = registry.import_hf(hub_repo, token=hub_server.token, endpoint=hub_server.endpoint)
    assert v.base_model == "meta-llama/Llama-3.1-8B"
    assert registry.get_ancestors(v) == []


def test_copy_artifacts_stores_verified_bytes(
    registry: Registry, hub_server: HubDouble, hub_repo: str, tmp_path: Path
):
    _publish(hub_server, hub_repo, "org/none")
    v = registry.import_hf(
        hub_repo, token=hub_server.token, endpoint=hub_server.endpoint, copy_artifacts=True
    )
    weights = next(a for a in v.artifacts if a.storage_path.endswith("safetensors"))
    assert weights.storage_backend == "local"
    assert registry.verify_artifact(weights)
    out = registry.download_artifact(weights, tmp_path / "w.safetensors")
    assert out.read_bytes() == WEIGHTS


def test_corrupt_hub_bytes_are_refused_when_copied(
    registry: Registry, hub_server: HubDouble, hub_repo: str
):
    from crucible_model_registry import ChecksumMismatchError

    _publish(hub_server, hub_repo, "org/none")
    hub_server.corrupt(hub_repo, "adapter_model.safetensors")
    with pytest.raises(ChecksumMismatchError):
        registry.import_hf(
            hub_repo, token=hub_server.token, endpoint=hub_server.endpoint, copy_artifacts=True
        )


def test_an_unknown_repository_is_not_found(registry: Registry, hub_server: HubDouble):
    with pytest.raises(NotFoundError) as caught:
        registry.import_hf("nobody/nothing", token=hub_server.token, endpoint=hub_server.endpoint)
    assert caught.value.kind == "hub repository"
    assert registry.list_models() == []
