"""HuggingFaceStorage: artifact files in a Hugging Face Hub repository, and its model card.

Bytes move with ``huggingface_hub``'s own calls against a configurable endpoint, revision
and token: each upload is one commit, a whole directory artifact included (large files
through Xet, or the classic LFS path when Xet is off); downloads go through
``hf_hub_download`` into a temporary directory beside the destination and are verified
against SHA-256 here, because the client checks only sizes.
:meth:`HuggingFaceStorage.push_model_card` writes what the Hub understands (``base_model``,
``base_model_relation``, metric names) plus the registry's own record of the version into
the repository's ``README.md``, merged into what is already there. ``huggingface_hub`` is
imported in this module only, on first use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote, urlsplit

from crucible_model_registry.domain.enums import Relationship
from crucible_model_registry.domain.redaction import redact
from crucible_model_registry.errors import (
    ConfigurationError,
    RegistryError,
    StorageError,
    ValidationError,
)
from crucible_model_registry.storage._streaming import (
    check_sha256,
    copy_hashing,
    file_mode,
    fsync_dir,
    open_source_file,
)
from crucible_model_registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    FileList,
    ProgressCallback,
    StoredItem,
    TransferResult,
    check_remote_path,
)
from crucible_model_registry.storage.model_card import CARD_NAME, merge_model_card

if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd, HfApi

__all__ = ["HuggingFaceStorage"]

RepoType = Literal["model", "dataset", "space"]

_REPO_TYPES: tuple[RepoType, ...] = ("model", "dataset", "space")
_URI_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# A namespace and a name, as the Hub spells them (up to 96 characters each).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_CARD_RETRIES = 3
_LOGIN_HINT = (
    "set HF_TOKEN, or give the token option "
    '(CMR_STORAGE_OPTIONS=\'{"repo_id": ..., "token": "hf_..."}\'), '
    "or log in once with `hf auth login`"
)


class HuggingFaceStorage:
    """Stores each artifact file at ``<remote path>`` inside one Hub repository.

    Every upload and delete is a commit on ``revision``, so a failed transfer leaves
    nothing visible. The recorded ``storage_path`` is an ``hf://`` URI
    (``hf://<repo_id>/<remote path>``, with ``datasets/``/``spaces/`` and ``@<revision>``
    where they apply). The repository (private unless ``private=False``) and, for a
    revision other than ``main``, the branch are created on the first upload.

    Args:
        repo_id: ``namespace/name`` (a user or an organization, then the repository).
        repo_type: ``model``, ``dataset`` or ``space``.
        revision: the branch uploads commit to and downloads read from.
        token: a Hub access token; None lets ``huggingface_hub`` find one (``HF_TOKEN``,
            the saved login). It never appears in messages, logs or ``repr``.
        endpoint: the Hub's URL (None: ``huggingface_hub``'s default, ``HF_ENDPOINT``).
        private: visibility of a repository created here; an existing one is not changed.

    Raises:
        ConfigurationError: an option is malformed (checked before any network call; the
            message never shows the token), or ``huggingface_hub`` is not installed.
    """

    name: str = "huggingface"

    def __init__(
        self,
        repo_id: str,
        repo_type: str = "model",
        revision: str = "main",
        token: str | None = None,
        endpoint: str | None = None,
        *,
        private: bool = True,
    ) -> None:
        _check_options(repo_id, repo_type, revision, token, endpoint)
        try:
            from huggingface_hub import HfApi
        except ImportError as exc:  # pragma: no cover - the dev environment has the extra
            raise ConfigurationError(
                "the huggingface storage backend needs huggingface_hub: "
                "pip install 'crucible-model-registry[hf]'"
            ) from exc
        self.repo_id = repo_id
        self.repo_type: RepoType = cast(RepoType, repo_type)
        self.revision = revision
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.private = private
        self._token = token
        self._api: HfApi = HfApi(
            endpoint=self.endpoint, token=token, library_name="crucible-model-registry"
        )
        rev = "" if revision == "main" else "@" + quote(revision, safe="")
        self._uri_prefix = f"hf://{_URI_PREFIX[repo_type]}{repo_id}{rev}/"
        self._repo_ready = False
        self._repo_lock = threading.Lock()

    def __repr__(self) -> str:
        token = "'***'" if self._token is not None else "None"
        endpoint = repr(None if self.endpoint is None else redact(self.endpoint))
        return (
            f"HuggingFaceStorage(repo_id={self.repo_id!r}, repo_type={self.repo_type!r}, "
            f"revision={self.revision!r}, token={token}, endpoint={endpoint})"
        )

    # -- StorageBackend ---------------------------------------------------------------

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Commit a file to the repository; see ``StorageBackend.upload``.

        The SHA-256 is the one ``huggingface_hub`` computes for the transfer itself (Xet
        hashes while chunking; the LFS protocol needs it before sending). The client has
        no byte-level upload hook, so ``progress`` hears of the whole file once committed.
        """
        [result] = self.upload_together([(local_path, remote_path)], progress=progress)
        return result

    def upload_together(
        self,
        files: FileList,
        *,
        then: Callable[[list[TransferResult]], FileList] | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[TransferResult]:
        """Commit ``files``, and what ``then`` adds, as one commit; see ``CommitsFilesTogether``.

        A commit is atomic on the Hub: a failure leaves none of the files visible. ``then``
        needs the files' SHA-256 before the commit, which costs Xet uploads one more local
        read of each file (LFS needs it first anyway).
        """
        operations = self._additions(files)
        if then is not None:
            operations += self._additions(then(self._results(operations)))
        self._ensure_repo()
        what = operations[0].path_in_repo if len(operations) == 1 else f"{len(operations)} files"
        with self._hub_errors(f"upload {what}"):
            self._api.create_commit(
                self.repo_id,
                operations,
                commit_message=f"Upload {what}",
                repo_type=self.repo_type,
                revision=self.revision,
            )
            # Known already for LFS/Xet uploads; a small inline file is read once more here.
            results = self._results(operations)
        if progress is not None:
            progress(sum(result.size_bytes for result in results))
        return results

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Fetch a file, verified before it lands; see ``StorageBackend.download``."""
        rel = self._remote(remote_path)
        destination = Path(local_path)
        with self._os_errors(f"prepare {destination.parent}"):
            destination.parent.mkdir(parents=True, exist_ok=True)
            # Beside the destination, so the final rename never crosses filesystems. An empty
            # local_dir and cache_dir of our own make the client fetch from the Hub every time
            # and keep unverified bytes out of the user's Hub cache.
            scratch = Path(tempfile.mkdtemp(prefix=".cmr-hf-", dir=destination.parent))
        try:
            with self._hub_errors(f"download {rel}", missing=f"nothing is stored at {rel!r}"):
                fetched = self._api.hf_hub_download(
                    self.repo_id,
                    rel,
                    repo_type=self.repo_type,
                    revision=self.revision,
                    local_dir=scratch / "files",
                    cache_dir=scratch / "cache",
                    tqdm_class=cast(Any, _progress_relay(progress)),
                )
            with self._os_errors(f"verify {rel}"), open_source_file(fetched) as src:
                size, sha256 = copy_hashing(src, None)
                check_sha256(sha256, expected_sha256, backend=self.name, path=rel)
                os.fchmod(src.fileno(), file_mode())
                os.fsync(src.fileno())
            with self._os_errors(f"move {rel} into place"):
                # Rename only after the hash matched, so the destination never holds bad bytes.
                os.replace(fetched, destination)
                fsync_dir(destination.parent)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return TransferResult(storage_path=self._uri_prefix + rel, size_bytes=size, sha256=sha256)

    def delete(self, remote_path: str) -> None:
        """Commit the file's removal; an absent file, revision or repository is a no-op."""
        self._commit_removal(self._remote(remote_path), folder=False)

    def delete_folder(self, remote_path: str) -> None:
        """Commit the removal of a folder and everything in it; absent is a no-op."""
        self._commit_removal(self._remote(remote_path), folder=True)

    def exists(self, remote_path: str) -> bool:
        """Is a file stored at ``remote_path`` on the revision? (False for a folder.)"""
        rel = self._remote(remote_path)
        with self._hub_errors(f"check {rel}"):
            return self._api.file_exists(
                self.repo_id, rel, repo_type=self.repo_type, revision=self.revision
            )

    def url(self, remote_path: str, *, expires_in: int = DEFAULT_URL_EXPIRY) -> str:
        """The file's ``resolve`` URL on the Hub.

        The Hub has no presigned URLs: ``expires_in`` does not apply, and a private
        repository answers only requests carrying a token.
        """
        from huggingface_hub import hf_hub_url

        rel = self._remote(remote_path)
        return hf_hub_url(
            self.repo_id,
            rel,
            repo_type=self.repo_type,
            revision=self.revision,
            endpoint=self._api.endpoint,
        )

    # -- ListsStoredFiles (garbage collection) ------------------------------------------

    def relative_path(self, storage_path: str) -> str:
        """The path in the repository of a recorded ``hf://`` URI or bare path.

        Raises:
            ValidationError: it names another repository or revision.
        """
        directory = storage_path.endswith("/")
        rel = self._remote(storage_path[:-1] if directory else storage_path)
        return rel + "/" if directory else rel

    def list_stored(self) -> Iterator[StoredItem]:
        """Every file on the revision (the Hub reports no per-file time: ``modified`` is None)."""
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        with self._hub_errors("list the repository's files"):
            try:
                paths = self._api.list_repo_files(
                    self.repo_id, repo_type=self.repo_type, revision=self.revision
                )
            except (RepositoryNotFoundError, RevisionNotFoundError):
                return
        for path in paths:
            try:
                yield StoredItem(check_remote_path(path), "file", None, None)
            except ValidationError:
                continue

    def remove_stored(self, item: StoredItem) -> None:
        """Commit the removal of a listed file."""
        self.delete(item.path)

    # -- model card -------------------------------------------------------------------

    def push_model_card(
        self,
        *,
        model_name: str,
        version: str,
        base_models: Sequence[str] = (),
        relationship: str | Relationship | None = None,
        metrics: Mapping[str, float] | None = None,
        recipe: str | None = None,
        config_hash: str | None = None,
    ) -> str:
        """Merge a version's metadata into the repository's ``README.md`` and commit it.

        The card is read at the revision's head commit and written with that commit as
        parent, so a concurrent edit is never overwritten: the merge is retried on the
        newer card. See :func:`merge_model_card` for what changes.

        Returns:
            The id of the commit holding the card.

        Raises:
            ValidationError: the relationship is unknown.
            StorageError: the Hub failed, or the existing card's metadata cannot be parsed
                (it is left as it is).
        """
        from huggingface_hub.errors import HfHubHTTPError

        self._ensure_repo()
        for attempt in range(1, _CARD_RETRIES + 1):
            with self._hub_errors("read the model card"):
                head = self._api.repo_info(
                    self.repo_id, repo_type=self.repo_type, revision=self.revision
                ).sha
                existing = self._read_card(head or self.revision)
            merged = merge_model_card(
                existing,
                model_name=model_name,
                version=version,
                base_models=base_models,
                relationship=relationship,
                metrics=metrics,
                recipe=recipe,
                config_hash=config_hash,
            )
            with self._hub_errors("write the model card"):
                try:
                    info = self._api.upload_file(
                        path_or_fileobj=merged.encode("utf-8"),
                        path_in_repo=CARD_NAME,
                        repo_id=self.repo_id,
                        repo_type=self.repo_type,
                        revision=self.revision,
                        commit_message=f"Model card: {model_name}@{version}",
                        parent_commit=head,
                    )
                except HfHubHTTPError as exc:
                    # Someone committed since we read the card: merge again into theirs.
                    if exc.response.status_code in (409, 412) and attempt < _CARD_RETRIES:
                        continue
                    raise
                return str(info.oid)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_card(self, commit: str) -> str | None:
        from huggingface_hub.errors import RemoteEntryNotFoundError

        with tempfile.TemporaryDirectory(prefix="cmr-hf-card-") as scratch:
            try:
                path = self._api.hf_hub_download(
                    self.repo_id,
                    CARD_NAME,
                    repo_type=self.repo_type,
                    revision=commit,
                    local_dir=Path(scratch) / "files",
                    cache_dir=Path(scratch) / "cache",
                    tqdm_class=cast(Any, _progress_relay(None)),
                )
            except RemoteEntryNotFoundError:
                return None
            return Path(path).read_text(encoding="utf-8-sig")

    # -- internals --------------------------------------------------------------------

    def _commit_removal(self, rel: str, *, folder: bool) -> None:
        from huggingface_hub.errors import (
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        what = f"{rel}/" if folder else rel
        remove = self._api.delete_folder if folder else self._api.delete_file
        with self._hub_errors(f"delete {what}"):
            try:
                remove(
                    rel,
                    self.repo_id,
                    repo_type=self.repo_type,
                    revision=self.revision,
                    commit_message=f"Delete {what}",
                )
            except (RemoteEntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError):
                return

    def _additions(self, files: FileList) -> list[CommitOperationAdd]:
        from huggingface_hub import CommitOperationAdd

        operations = []
        for local_path, remote_path in files:
            rel = self._remote(remote_path)
            with open_source_file(local_path):
                pass  # the same ValidationError as every backend for a missing or odd path
            with self._hub_errors(f"read {local_path}"):
                source = os.path.realpath(local_path)
                operations.append(CommitOperationAdd(path_in_repo=rel, path_or_fileobj=source))
        return operations

    def _results(self, operations: Sequence[CommitOperationAdd]) -> list[TransferResult]:
        return [
            TransferResult(
                storage_path=self._uri_prefix + op.path_in_repo,
                size_bytes=op.upload_info.size,
                sha256=op.upload_info.sha256.hex(),
            )
            for op in operations
        ]

    def _remote(self, remote_path: str) -> str:
        """A path relative to the repository root, from a remote path or our ``hf://`` URI."""
        if isinstance(remote_path, str) and remote_path.startswith("hf://"):
            if not remote_path.startswith(self._uri_prefix):
                raise ValidationError.single(
                    "remote_path",
                    f"{remote_path!r} is not in this backend's repository {self._uri_prefix!r}",
                )
            remote_path = remote_path[len(self._uri_prefix) :]
        return check_remote_path(remote_path)

    def _ensure_repo(self) -> None:
        with self._repo_lock:
            if self._repo_ready:
                return
            with self._hub_errors(f"create the repository {self.repo_id}"):
                self._api.create_repo(
                    self.repo_id, repo_type=self.repo_type, private=self.private, exist_ok=True
                )
                if self.revision != "main":
                    self._api.create_branch(
                        self.repo_id, branch=self.revision, repo_type=self.repo_type, exist_ok=True
                    )
            self._repo_ready = True

    def _redact(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        return redact(text)

    def _auth_problem(self, status: int) -> str:
        where = self.endpoint or "the Hub"
        if status == 403:
            return (
                f"{where} refused access (HTTP 403): the token may not write to "
                f"{self.repo_id}; use one that may: {_LOGIN_HINT}"
            )
        if self._token is None:
            return (
                f"{where} refused the request (HTTP 401 Unauthorized): no token was given, "
                f"and none valid was found; {_LOGIN_HINT}"
            )
        return f"{where} refused the token (HTTP 401 Unauthorized): {_LOGIN_HINT}"

    @contextlib.contextmanager
    def _os_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            detail = self._redact(exc.strerror or type(exc).__name__)
            raise StorageError(f"could not {action}: {detail}", backend=self.name) from exc

    @contextlib.contextmanager
    def _hub_errors(self, action: str, *, missing: str | None = None) -> Iterator[None]:
        """Turn ``huggingface_hub``/``httpx`` failures into ``StorageError`` without secrets."""
        import httpx2
        from huggingface_hub.errors import (
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        try:
            yield
        except RegistryError:
            raise
        except (httpx2.HTTPError, OSError, ValueError, RuntimeError) as exc:
            status = _http_status(exc)
            if missing is not None and isinstance(
                exc, RemoteEntryNotFoundError | RevisionNotFoundError | RepositoryNotFoundError
            ):
                message = f"{missing} in {self._uri_prefix}"
            elif status in (401, 403):
                message = f"could not {action} in {self._uri_prefix}: {self._auth_problem(status)}"
            else:
                message = f"could not {action} in {self._uri_prefix}: {self._describe(exc)}"
            raise StorageError(self._redact(message), backend=self.name) from exc

    def _describe(self, exc: BaseException) -> str:
        """One line naming the failure: the exception's first line and its cause's."""
        parts: list[str] = []
        seen: BaseException | None = exc
        while seen is not None and len(parts) < 2:
            first = (str(seen).strip().splitlines() or [type(seen).__name__])[0]
            parts.append(f"{type(seen).__name__}: {first}")
            seen = seen.__cause__
        return self._redact(" <- ".join(parts))


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a ``huggingface_hub``/``httpx`` error that carries a response."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _is_http_url(url: str) -> bool:
    if re.match(r"^https?://[^\s/]+", url) is None or any(c.isspace() for c in url):
        return False
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return False
    return True


def _check_options(
    repo_id: object, repo_type: object, revision: object, token: object, endpoint: object
) -> None:
    checks = [
        (
            "repo_id",
            isinstance(repo_id, str) and _REPO_ID.match(repo_id) is not None,
            f"{repo_id!r} is not a Hub repository id 'namespace/name'",
        ),
        ("repo_type", repo_type in _REPO_TYPES, f"must be one of {', '.join(_REPO_TYPES)}"),
        (
            "revision",
            isinstance(revision, str) and bool(revision) and revision == revision.strip(),
            "must be a non-empty branch name without surrounding spaces",
        ),
        (
            "token",
            token is None or (isinstance(token, str) and bool(token.strip())),
            "must be a non-empty string or None",
        ),
        (
            "endpoint",
            endpoint is None or (isinstance(endpoint, str) and _is_http_url(endpoint)),
            "must be an http:// or https:// URL with a host and, if any, a numeric port",
        ),
    ]
    problems = [f"{field}: {message}" for field, ok, message in checks if not ok]
    if problems:
        raise ConfigurationError("huggingface: invalid options: " + "; ".join(problems))


def _progress_relay(progress: ProgressCallback | None) -> type:
    """A ``tqdm_class`` for ``huggingface_hub`` that forwards written bytes to ``progress``.

    It also keeps the client's own bars off the terminal. Defining ``update_transfer``
    makes a Xet download use a single instance for both its bars: ``update`` counts bytes
    written to disk (forwarded), ``update_transfer`` network bytes (ignored).
    """

    class _Relay:
        def __init__(self, *args: object, total: float | None = None, **kwargs: object) -> None:
            self.n = 0
            self.total = total
            self.format_dict: dict[str, object] = {}

        def __enter__(self) -> _Relay:
            return self

        def __exit__(self, *exc_info: object) -> None:
            return None

        def update(self, n: float | None = 1) -> None:
            if n:
                self.n += int(n)
                if progress is not None:
                    progress(int(n))

        def update_transfer(self, n: float | None = 1) -> None:
            return None

        def set_postfix_str(self, *args: object, **kwargs: object) -> None:
            return None

        def set_transfer_postfix_str(self, *args: object, **kwargs: object) -> None:
            return None

        def refresh(self, *args: object, **kwargs: object) -> None:
            return None

        def close(self) -> None:
            return None

    return _Relay
