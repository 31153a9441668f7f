"""Reading a model repository on the Hugging Face Hub: its commit, model card and files.

``huggingface_hub`` is imported on first use (the ``hf`` extra). The card is fetched as the
repository's ``README.md`` and its YAML front matter read by ``huggingface_hub``'s
``metadata_load``;
the files come from the repository tree, with the SHA-256 the Hub keeps for LFS files.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

from crucible_model_registry.errors import ConfigurationError, NotFoundError, StorageError

__all__ = ["HubFile", "HubModel", "read_hub_model"]


@dataclasses.dataclass(frozen=True, slots=True)
class HubFile:
    """One file of a repository at a commit."""

    path: str
    size_bytes: int
    sha256: str | None  # known for LFS files only


@dataclasses.dataclass(frozen=True, slots=True)
class HubModel:
    """A model repository at one commit: its card's metadata and its files."""

    repo_id: str
    commit: str
    card: dict[str, Any]
    files: list[HubFile]


def read_hub_model(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> HubModel:
    """The repository's commit at ``revision``, its model card metadata and its files.

    Raises:
        NotFoundError: no such repository or revision.
        StorageError: the Hub failed, or the card's YAML cannot be parsed.
        ConfigurationError: ``huggingface_hub`` is not installed.
    """
    try:
        import httpx2
        import yaml
        from huggingface_hub import HfApi
        from huggingface_hub.errors import (
            EntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
        from huggingface_hub.hf_api import RepoFile
        from huggingface_hub.repocard import metadata_load
    except ImportError as exc:  # pragma: no cover - the dev environment has the extra
        raise ConfigurationError(
            "importing from the Hub needs huggingface_hub: "
            "pip install 'crucible-model-registry[hf]'"
        ) from exc
    api = HfApi(endpoint=endpoint, token=token, library_name="crucible-model-registry")
    scratch = Path(tempfile.mkdtemp(prefix="cmr-hub-"))
    try:
        info = api.model_info(repo_id, revision=revision)
        commit = str(info.sha)
        files = [
            HubFile(
                path=entry.path,
                size_bytes=int(entry.size),
                sha256=entry.lfs.sha256 if entry.lfs is not None else None,
            )
            for entry in api.list_repo_tree(repo_id, revision=commit, recursive=True)
            if isinstance(entry, RepoFile)
        ]
        card: dict[str, Any] = {}
        if any(f.path == "README.md" for f in files):
            readme = api.hf_hub_download(
                repo_id,
                "README.md",
                revision=commit,
                local_dir=scratch / "files",
                cache_dir=scratch / "cache",
            )
            # The card's YAML as written: ModelCard's own model-index parsing refuses
            # entries with a field missing, and would drop their results.
            card = dict(metadata_load(readme) or {})
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise NotFoundError(
            "hub repository", f"{repo_id}@{revision or 'main'}", "check the id and --revision"
        ) from exc
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise StorageError(
            f"the model card of {repo_id} cannot be parsed: {str(exc).splitlines()[0]}",
            backend="huggingface",
        ) from exc
    except (httpx2.HTTPError, OSError, EntryNotFoundError) as exc:
        raise StorageError(
            f"could not read {repo_id} from the Hub: {type(exc).__name__}", backend="huggingface"
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return HubModel(repo_id=repo_id, commit=commit, card=card, files=files)
