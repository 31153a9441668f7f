"""HuggingFaceStorage through the real huggingface_hub against the Hub double: contract and more."""

from __future__ import annotations

import hashlib
import logging
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from huggingface_hub import HfApi
from tests.servers.hub import HubDouble, hub_repo, hub_server
from tests.storage.contract import MiB, StorageContract, sha256_of, write_file

from crucible_model_registry.errors import (
    ChecksumMismatchError,
    ConfigurationError,
    StorageError,
    ValidationError,
)
from crucible_model_registry.storage.backends import create_backend
from crucible_model_registry.storage.base import StorageBackend
from crucible_model_registry.storage.huggingface import HuggingFaceStorage
from crucible_model_registry.storage.manifest import (
    MANIFEST_NAME,
    delete_artifact_files,
    download_artifact_files,
    upload_directory,
)
from crucible_model_registry.storage.model_card import CARD_KEY, merge_model_card

__all__ = ["hub_repo", "hub_server"]

pytestmark = [
    pytest.mark.hf,
    # huggingface_hub hands httpx2 a file object as `data=` for LFS PUTs; httpx2 deprecates that.
    pytest.mark.filterwarnings(
        "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
    ),
]

HUB_FILES = {".gitattributes", "README.md"}  # what the Hub (or a model card) adds


def make_storage(hub: HubDouble, repo_id: str, **options: object) -> HuggingFaceStorage:
    return HuggingFaceStorage(
        repo_id,
        token=hub.token,
        endpoint=hub.endpoint,
        **options,  # type: ignore[arg-type]
    )


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def client(hub: HubDouble) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=hub.token)


def read_card(hub: HubDouble, repo_id: str) -> tuple[dict[str, Any], str]:
    """The README's metadata and body as stored on the Hub."""
    text = hub.object_path(repo_id, "README.md").read_text(encoding="utf-8")
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


class TestHuggingFaceStorage(StorageContract):
    @pytest.fixture
    def artifact_storage(self, hub_server: HubDouble, hub_repo: str) -> HuggingFaceStorage:
        self.hub = hub_server
        return make_storage(hub_server, hub_repo)

    def stored_files(self, backend: StorageBackend) -> set[str]:
        assert isinstance(backend, HuggingFaceStorage)
        return set(self.hub.files(backend.repo_id)) - HUB_FILES

    def corrupt(self, backend: StorageBackend, remote_path: str) -> None:
        assert isinstance(backend, HuggingFaceStorage)
        self.hub.corrupt(backend.repo_id, remote_path)


@pytest.fixture
def storage(hub_server: HubDouble, hub_repo: str) -> HuggingFaceStorage:
    return make_storage(hub_server, hub_repo)


# -- paths and repositories ------------------------------------------------------------------


def test_storage_path_is_an_hf_uri(storage: HuggingFaceStorage, tmp_path: Path) -> None:
    result = storage.upload(write_file(tmp_path / "a.bin", 10), "m/1/other/a.bin")
    assert result.storage_path == f"hf://{storage.repo_id}/m/1/other/a.bin"


def test_dataset_on_a_branch_keeps_type_and_revision(
    hub_server: HubDouble, hub_repo: str, tmp_path: Path
) -> None:
    storage = make_storage(hub_server, hub_repo, repo_type="dataset", revision="dev")
    src = write_file(tmp_path / "a.bin", 1000)
    result = storage.upload(src, "m/1/other/a.bin")

    assert result.storage_path == f"hf://datasets/{hub_repo}@dev/m/1/other/a.bin"
    assert "m/1/other/a.bin" in hub_server.files(hub_repo, repo_type="dataset", revision="dev")
    assert "m/1/other/a.bin" not in hub_server.files(hub_repo, repo_type="dataset")
    storage.download(result.storage_path, tmp_path / "b.bin", expected_sha256=result.sha256)
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()


def test_the_repository_is_created_private_unless_asked(
    hub_server: HubDouble, hub_repo: str, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "a.bin", 10)
    make_storage(hub_server, hub_repo).upload(src, "m/1/other/a.bin")
    make_storage(hub_server, hub_repo + "-open", private=False).upload(src, "m/1/other/a.bin")
    assert hub_server.visibility(hub_repo) == "private"
    assert hub_server.visibility(hub_repo + "-open") == "public"


def test_uploading_the_same_bytes_again_is_a_no_op_commit(
    storage: HuggingFaceStorage, hub_server: HubDouble, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "a.bin", 5000)
    first = storage.upload(src, "m/1/other/a.bin")
    commits_before = len(hub_server.requests_matching("POST", "/commit/"))
    second = storage.upload(src, "m/1/other/a.bin")
    assert second == first
    assert len(hub_server.requests_matching("POST", "/commit/")) == commits_before


@pytest.mark.parametrize(
    "uri",
    [
        "hf://someone/else/m/1/other/a.bin",
        "hf://datasets/{repo}/m/1/other/a.bin",
        "hf://{repo}@dev/m/1/other/a.bin",
        "hf://{repo}/../a.bin",
    ],
)
def test_a_uri_outside_the_repository_is_refused(
    storage: HuggingFaceStorage, tmp_path: Path, uri: str
) -> None:
    uri = uri.format(repo=storage.repo_id)
    with pytest.raises(ValidationError):
        storage.download(uri, tmp_path / "x.bin")
    with pytest.raises(ValidationError):
        storage.delete(uri)
    assert not (tmp_path / "x.bin").exists()


def test_the_hub_lists_the_registry_layout(
    storage: HuggingFaceStorage,
    hub_server: HubDouble,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("a.json", "b.json", "c.json"):
        storage.upload(write_file(tmp_path / name, 50), f"org/llama/1.0.0/config/{name}")
    monkeypatch.setattr(hub_server, "tree_page_size", 2)  # the client follows `Link` pages

    listed = client(hub_server).list_repo_files(storage.repo_id)

    assert set(listed) - HUB_FILES == {f"org/llama/1.0.0/config/{n}.json" for n in "abc"}


# -- directories: one commit each way ----------------------------------------------------------


def _checkpoint(root: Path) -> dict[str, Path]:
    return {
        "config.json": write_file(root / "config.json", 300, seed=1),
        "model-00001-of-00002.safetensors": write_file(
            root / "model-00001-of-00002.safetensors",
            11 * MiB,
            seed=2,  # LFS
        ),
        "model-00002-of-00002.safetensors": write_file(
            root / "model-00002-of-00002.safetensors", 4099, seed=3
        ),
        "tokenizer/tokenizer.json": write_file(root / "tokenizer" / "tokenizer.json", 900, seed=4),
    }


def test_a_directory_is_one_commit_and_its_deletion_another(
    storage: HuggingFaceStorage, hub_server: HubDouble, tmp_path: Path
) -> None:
    tree = _checkpoint(tmp_path / "ckpt")
    base = "org/llama/1.0.0/checkpoint/ckpt"
    hub_server.requests.clear()
    moved: list[int] = []

    result = upload_directory(storage, tmp_path / "ckpt", base, progress=moved.append)

    assert len(hub_server.requests_matching("POST", "/commit/")) == 1
    stored = set(hub_server.files(storage.repo_id)) - HUB_FILES
    assert stored == {f"{base}/{rel}" for rel in tree} | {f"{base}/{MANIFEST_NAME}"}
    assert {e.path: e.sha256 for e in result.manifest.files} == {
        rel: sha256_of(path) for rel, path in tree.items()
    }
    assert result.sha256 == sha256_of_bytes(result.manifest.to_json_bytes())
    assert sum(moved) == result.size_bytes + len(result.manifest.to_json_bytes())
    out = tmp_path / "out"
    download_artifact_files(storage, result.storage_path, out, expected_sha256=result.sha256)
    assert {p.relative_to(out).as_posix(): sha256_of(p) for p in out.rglob("*") if p.is_file()} == {
        rel: sha256_of(path) for rel, path in tree.items()
    }

    hub_server.requests.clear()
    delete_artifact_files(storage, result.storage_path)

    assert len(hub_server.requests_matching("POST", "/commit/")) == 1
    assert set(hub_server.files(storage.repo_id)) - HUB_FILES == set()
    delete_artifact_files(storage, result.storage_path)  # absent: a no-op


def test_a_refused_directory_commit_leaves_no_file_of_it(
    storage: HuggingFaceStorage, hub_server: HubDouble, tmp_path: Path
) -> None:
    _checkpoint(tmp_path / "ckpt")
    storage.upload(write_file(tmp_path / "other.txt", 10), "org/llama/1.0.0/config/other.txt")
    before = hub_server.files(storage.repo_id)
    hub_server.inject_fault(method="POST", path_contains="/commit/", status=403)

    with pytest.raises(StorageError) as info:
        upload_directory(storage, tmp_path / "ckpt", "org/llama/1.0.0/checkpoint/ckpt")

    assert info.value.backend == "huggingface"
    assert hub_server.files(storage.repo_id) == before
    assert hub_server.token not in str(info.value)


# -- large files through LFS -------------------------------------------------------------------


def test_a_large_file_goes_through_lfs_multipart(
    storage: HuggingFaceStorage, hub_server: HubDouble, tmp_path: Path
) -> None:
    size = 72 * MiB + 3  # above the double's 32 MiB multipart threshold: five 16 MiB parts
    src = write_file(tmp_path / "model.safetensors", size, seed=7)
    hub_server.requests.clear()

    up = storage.upload(src, "org/llama/1.0.0/checkpoint/model.safetensors")
    dest = tmp_path / "out" / "model.safetensors"
    down = storage.download(up.storage_path, dest, expected_sha256=up.sha256)

    assert (up.size_bytes, up.sha256) == (size, sha256_of(src))
    assert (down.size_bytes, down.sha256) == (size, up.sha256)
    assert sha256_of(dest) == up.sha256
    assert len(hub_server.requests_matching("PUT", "/lfs-upload/")) == 5
    assert hub_server.requests_matching("POST", "/info/lfs/objects/verify")
    assert not hub_server.requests_matching("GET", "xet-write-token")
    cdn_gets = hub_server.requests_matching("GET", "/lfs-cdn/")
    assert len(cdn_gets) == 1
    assert cdn_gets[0].authorization is None  # the token stays on the Hub's own origin


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.txt", b"plain text, stored inline in the commit\n" * 20), ("weights.bin", None)],
)
def test_corrupted_bytes_on_the_hub_leave_the_destination_untouched(
    storage: HuggingFaceStorage,
    hub_server: HubDouble,
    tmp_path: Path,
    name: str,
    content: bytes | None,
) -> None:
    src = tmp_path / name
    if content is None:
        write_file(src, 2 * MiB, seed=3)  # binary: an LFS file, served through the "CDN"
    else:
        src.write_bytes(content)  # text: a regular file, served by `resolve` itself
    up = storage.upload(src, f"m/1/other/{name}")
    hub_server.corrupt(storage.repo_id, f"m/1/other/{name}")
    dest = tmp_path / "out" / name
    dest.parent.mkdir()
    dest.write_bytes(b"the previous bytes")

    with pytest.raises(ChecksumMismatchError) as info:
        storage.download(up.storage_path, dest, expected_sha256=up.sha256)

    assert (info.value.backend, info.value.expected) == ("huggingface", up.sha256)
    assert info.value.actual != up.sha256
    assert dest.read_bytes() == b"the previous bytes"
    assert [p.name for p in dest.parent.iterdir()] == [name]


def test_a_failed_lfs_upload_leaves_nothing_visible(
    storage: HuggingFaceStorage, hub_server: HubDouble, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "a.bin", MiB, seed=11)
    hub_server.inject_fault(method="PUT", path_contains="/lfs-upload/", status=403)

    with pytest.raises(StorageError) as info:
        storage.upload(src, "m/1/checkpoint/a.bin")

    assert info.value.backend == "huggingface"
    assert not storage.exists("m/1/checkpoint/a.bin")
    assert set(hub_server.files(storage.repo_id)) <= HUB_FILES


def test_an_unreachable_hub_is_a_storage_error(tmp_path: Path) -> None:
    storage = HuggingFaceStorage("org/repo", token="hf_x", endpoint="http://127.0.0.1:9")
    with pytest.raises(StorageError) as info:
        storage.upload(write_file(tmp_path / "a.bin", 10), "m/1/other/a.bin")
    assert info.value.backend == "huggingface"
    with pytest.raises(StorageError):
        storage.exists("m/1/other/a.bin")


# -- the token ---------------------------------------------------------------------------------


def test_the_token_never_shows(
    hub_server: HubDouble, hub_repo: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    token = hub_server.token
    assert token is not None
    good = make_storage(hub_server, hub_repo)
    wrong_token = "hf_wrongToken_abcdefghijklmnopqrstuvwxyz"
    wrong = HuggingFaceStorage(hub_repo, token=wrong_token, endpoint=hub_server.endpoint)
    src = write_file(tmp_path / "a.bin", 3000)

    result = good.upload(src, "m/1/other/a.bin")
    with pytest.raises(StorageError) as refused:
        wrong.upload(src, "m/1/other/b.bin")
    with pytest.raises(StorageError) as absent:
        good.download("m/1/other/missing.bin", tmp_path / "missing.bin")

    shown = [repr(good), str(good), repr(wrong), repr(result), good.url(result.storage_path)]
    for err in (refused.value, absent.value):
        assert err.backend == "huggingface"
        shown += ["".join(traceback.format_exception(err)), repr(err.args)]
    shown.append(caplog.text)
    for secret in (token, wrong_token):
        assert not [text for text in shown if secret in text]
    # ...yet it was sent where it belongs.
    assert any(r.authorization == f"Bearer {hub_server.token}" for r in hub_server.requests)


def test_bad_options_fail_before_any_request(hub_server: HubDouble) -> None:
    before = len(hub_server.requests)
    secret = "hf_secretValue_0123456789"
    for options in (
        {"repo_id": "not a repo id"},
        {"repo_id": "org/repo", "repo_type": "bucket"},
        {"repo_id": "org/repo", "endpoint": "ftp://example.org"},
        {"repo_id": "org/repo", "revision": ""},
    ):
        with pytest.raises(ConfigurationError) as info:
            create_backend("huggingface", {**options, "token": secret})
        assert secret not in str(info.value)
    assert len(hub_server.requests) == before


def test_settings_build_the_backend(hub_server: HubDouble, hub_repo: str, tmp_path: Path) -> None:
    backend = create_backend(
        "huggingface",
        {"repo_id": hub_repo, "token": hub_server.token, "endpoint": hub_server.endpoint},
    )
    assert isinstance(backend, HuggingFaceStorage)
    assert backend.name == "huggingface"
    assert backend.upload(write_file(tmp_path / "a.bin", 10), "m/1/other/a.bin").size_bytes == 10


# -- the model card ----------------------------------------------------------------------------

EXISTING_CARD = """---
license: apache-2.0
tags:
- sft
metrics:
- bleu
owner_notes: keep me
---

# Llama SFT

Written by a person; the registry must not touch this.
"""


def test_model_card_merges_into_an_existing_card(
    storage: HuggingFaceStorage, hub_server: HubDouble
) -> None:
    client(hub_server).create_repo(storage.repo_id)
    client(hub_server).upload_file(
        path_or_fileobj=EXISTING_CARD.encode(), path_in_repo="README.md", repo_id=storage.repo_id
    )

    storage.push_model_card(
        model_name="llama-sft",
        version="1",
        base_models=["meta-llama/Llama-3.1-8B"],
        relationship="fine_tune",
        metrics={"accuracy": 0.92},
        recipe="sl_basic",
        config_hash="ab" * 32,
    )
    storage.push_model_card(
        model_name="llama-merge",
        version="2",
        base_models=["org/a", "org/b"],
        relationship="merged_from",
        metrics={"bleu": 31.2},
    )

    meta, body = read_card(hub_server, storage.repo_id)
    assert body == EXISTING_CARD.split("---\n", 2)[2]
    assert (meta["license"], meta["tags"], meta["owner_notes"]) == (
        "apache-2.0",
        ["sft"],
        "keep me",
    )
    assert meta["base_model"] == ["org/a", "org/b"]
    assert meta["base_model_relation"] == "merge"
    assert meta["metrics"] == ["bleu", "accuracy"]
    ours = meta[CARD_KEY]
    assert isinstance(ours, dict)
    assert ours["llama-sft@1"] == {
        "model_name": "llama-sft",
        "version": "1",
        "recipe": "sl_basic",
        "config_hash": "ab" * 32,
        "metrics": {"accuracy": 0.92},
        "base_models": ["meta-llama/Llama-3.1-8B"],
        "relationship": "fine_tuned_from",
    }
    assert ours["llama-merge@2"]["relationship"] == "merged_from"


def test_model_card_is_created_when_the_repo_has_none(
    storage: HuggingFaceStorage, hub_server: HubDouble
) -> None:
    storage.push_model_card(
        model_name="tiny",
        version="3",
        base_models=["org/base"],
        relationship="quantized_from",
    )
    meta, body = read_card(hub_server, storage.repo_id)
    assert (meta["base_model"], meta["base_model_relation"]) == ("org/base", "quantized")
    assert "# tiny" in body


def test_model_card_keeps_an_edit_made_between_its_read_and_its_write(
    storage: HuggingFaceStorage, hub_server: HubDouble
) -> None:
    storage.push_model_card(model_name="m", version="1", metrics={"loss": 1.5})
    card = hub_server.object_path(storage.repo_id, "README.md").read_text()

    def someone_edits_the_card() -> None:
        edited = card.replace("---\n", "---\nowner_notes: written concurrently\n", 1)
        hub_server.put_file(storage.repo_id, "README.md", edited.encode())

    hub_server.run_before(
        method="POST", path_contains=f"{storage.repo_id}/commit/", action=someone_edits_the_card
    )
    storage.push_model_card(model_name="m", version="2", metrics={"loss": 1.0})

    meta, _ = read_card(hub_server, storage.repo_id)
    assert meta["owner_notes"] == "written concurrently"
    assert set(meta[CARD_KEY]) == {"m@1", "m@2"}


def test_an_unparsable_card_is_left_alone(
    storage: HuggingFaceStorage, hub_server: HubDouble
) -> None:
    broken = "---\nlicense: [unclosed\n---\n# hand-written\n"
    client(hub_server).create_repo(storage.repo_id)
    hub_server.put_file(storage.repo_id, "README.md", broken.encode())  # as by a git push
    with pytest.raises(StorageError):
        storage.push_model_card(model_name="m", version="1", base_models=["org/base"])
    assert hub_server.object_path(storage.repo_id, "README.md").read_text() == broken


@pytest.mark.parametrize(
    ("relationship", "bases", "expected_base", "expected_relation"),
    [
        ("fine_tuned_from", ["org/base"], "org/base", "finetune"),
        ("adapter", ["org/base"], "org/base", "adapter"),
        ("quantization", ["org/base"], "org/base", "quantized"),
        ("merge", ["org/base"], ["org/base"], "merge"),
        ("distilled_from", ["org/teacher"], "org/teacher", None),
        (None, ["org/a", "org/b"], ["org/a", "org/b"], None),
    ],
)
def test_relationships_map_to_the_hub_vocabulary(
    relationship: str | None,
    bases: list[str],
    expected_base: object,
    expected_relation: str | None,
) -> None:
    previous = "---\nbase_model: old/base\nbase_model_relation: adapter\n---\nbody\n"
    merged = merge_model_card(
        previous, model_name="m", version="1", base_models=bases, relationship=relationship
    )
    meta = yaml.safe_load(merged.split("---\n", 2)[1])
    assert meta["base_model"] == expected_base
    assert meta.get("base_model_relation") == expected_relation
    assert merged.endswith("---\nbody\n")


def test_no_base_models_leave_the_cards_base_model_alone() -> None:
    previous = "---\nbase_model: old/base\nbase_model_relation: adapter\n---\nbody\n"
    meta = yaml.safe_load(
        merge_model_card(previous, model_name="m", version="1", metrics={"acc": 1.0}).split(
            "---\n", 2
        )[1]
    )
    assert (meta["base_model"], meta["base_model_relation"]) == ("old/base", "adapter")


def test_an_unknown_relationship_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        merge_model_card(None, model_name="m", version="1", relationship="cloned_from")
    assert "relationship" in info.value.errors
