"""The Hub test double's state: repositories, commits, file bytes on disk and LFS uploads.

No HTTP here: :mod:`tests.servers.hub` serves this state the way the Hub's API does. File
bytes are content-addressed by SHA-256 under ``<root>/objects`` (a few hundred MB cost no
memory); repositories and their commits, each a full snapshot of the tree, are kept in
memory. Failures are :class:`HubError`, which carries the HTTP status and ``X-Error-Code``
the Hub would answer with.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["Commit", "Entry", "HubError", "HubStore", "Repo", "Upload"]

MiB = 1024 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
OBJECT_RE = re.compile(r"^(?:[0-9a-f]{64}|corrupt-[0-9a-f]{32})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# A few of the patterns the Hub writes into a new repository's .gitattributes.
_LFS_PATTERNS = ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.onnx", "*.h5")
_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS)


class HubError(Exception):
    """A failure answered as the Hub would: a status, a message and maybe an error code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def git_blob_sha1(data: bytes) -> str:
    """Git's object id for a blob holding ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file in a commit's tree."""

    path: str
    size: int
    sha256: str
    lfs: bool
    blob_id: str  # git SHA-1 of the content (regular) or of the LFS pointer (LFS)
    blob: str = ""  # its file under objects/: the SHA-256, unless corrupt() gave it a copy

    @property
    def object_name(self) -> str:
        return self.blob or self.sha256

    @property
    def pointer_size(self) -> int:
        return len(_LFS_POINTER.format(oid=self.sha256, size=self.size))


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    visibility: str = "public"
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """A branch's head, or the commit with that id."""
        return self.commits.get(self.branches.get(revision, revision))


@dataclass
class Upload:
    """An LFS upload in progress, addressed by an unguessable id like a presigned URL."""

    oid: str
    size: int
    parts: int  # 0 for a basic (single PUT) upload
    etags: dict[int, str] = field(default_factory=dict)


class HubStore:
    """Repositories, commits and objects, safe to use from the server and test threads.

    Args:
        root: where objects and uploads are kept (a fresh temporary directory if None).
        lfs_threshold: files at least this large are sent through LFS; so are files whose
            first 512 bytes hold a NUL and names such as ``*.bin``, as on the Hub.
    """

    def __init__(self, root: Path | None = None, *, lfs_threshold: int = 10 * MiB) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="hub-double-")) if root is None else root
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)
        self.lfs_threshold = lfs_threshold
        self._repos: dict[tuple[str, str], Repo] = {}
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.RLock()

    def remove_files(self) -> None:
        """Delete the stored bytes (if the root was created here)."""
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers for tests ------------------------------------------------------------

    def files(
        self, repo_id: str, *, revision: str = "main", repo_type: str = "model"
    ) -> dict[str, int]:
        """Every file at ``revision``, path -> size (empty if the repository does not exist)."""
        try:
            commit = self._commit(repo_type, repo_id, revision)
        except HubError:
            return {}
        return {path: entry.size for path, entry in commit.files.items()}

    def object_path(
        self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model"
    ) -> Path:
        """The file on disk holding ``path``'s bytes; identical contents share it."""
        entry = self._commit(repo_type, repo_id, revision).files[path]
        return self.root / "objects" / entry.object_name

    def corrupt(
        self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model"
    ) -> None:
        """Flip the first byte of ``path`` at ``revision``'s head, and of nothing else.

        The file gets a private, altered copy of its bytes; its size, ETag and recorded
        SHA-256 stay as they were, as when storage rots under the Hub.
        """
        with self._lock:
            commit = self._commit(repo_type, repo_id, revision)
            entry = commit.files[path]
            if entry.size == 0:
                raise ValueError(f"{path} is empty: there is no byte to corrupt")
            blob = f"corrupt-{uuid.uuid4().hex}"
            target = self.root / "objects" / blob
            shutil.copyfile(self.root / "objects" / entry.object_name, target)
            with target.open("r+b") as fh:
                first = fh.read(1)
                fh.seek(0)
                fh.write(bytes([first[0] ^ 0xFF]))
            commit.files[path] = replace(entry, blob=blob)

    def put_file(
        self,
        repo_id: str,
        path: str,
        data: bytes,
        *,
        revision: str = "main",
        repo_type: str = "model",
    ) -> None:
        """Commit ``data`` at ``path`` directly, unchecked (like a ``git push``)."""
        self.commit_operations(
            repo_type, repo_id, revision, {"summary": f"Put {path}"}, [self._regular(path, data)]
        )

    # -- repositories -----------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> Commit:
        repo = self._repo(repo_type, repo_id)
        with self._lock:
            commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def visibility(self, repo_id: str, *, repo_type: str = "model") -> str:
        """``public`` or ``private``, as asked for at creation."""
        return self._repo(repo_type, repo_id).visibility

    def create_repo(
        self, repo_type: str, organization: object, name: object, visibility: object = None
    ) -> tuple[str, bool]:
        """Create ``organization/name`` with a ``.gitattributes``; (repo id, was it created)."""
        if not isinstance(organization, str) or not _NAME_RE.match(organization):
            raise HubError(400, "the double needs a '<namespace>/<name>' repo id")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise HubError(400, f"invalid repository name {name!r}")
        repo_id = f"{organization}/{name}"
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                return repo_id, False
            repo = Repo(repo_type, repo_id, "private" if visibility == "private" else "public")
            self._repos[(repo_type, repo_id)] = repo
            entry = self._regular(".gitattributes", _GITATTRIBUTES.encode())
            self._add_commit(repo, "main", None, "initial commit", {entry.path: entry})
        return repo_id, True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self._lock:
            if self._repos.pop((repo_type, repo_id), None) is None:
                raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")

    def create_branch(self, repo_type: str, repo_id: str, branch: str, start: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit(repo_type, repo_id, start)
        with self._lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference refs/heads/{branch} already exists")
            repo.branches[branch] = commit.oid

    def _add_commit(
        self, repo: Repo, branch: str, parent: str | None, summary: str, files: dict[str, Entry]
    ) -> Commit:
        oid = hashlib.sha1(uuid.uuid4().bytes, usedforsecurity=False).hexdigest()
        commit = Commit(oid, parent, summary, files)
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    # -- commits ----------------------------------------------------------------------

    def upload_mode(self, path: str, size: int, sample: bytes) -> str:
        """``lfs`` or ``regular``, decided as the Hub's preupload does."""
        name = PurePosixPath(path).name
        lfs = (
            size >= self.lfs_threshold
            or b"\0" in sample
            or any(fnmatch.fnmatchcase(name, pattern) for pattern in _LFS_PATTERNS)
        )
        return "lfs" if lfs else "regular"

    def commit_operations(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        header: dict[str, Any],
        operations: list[tuple[str, dict[str, Any]] | Entry],
    ) -> Commit:
        """Apply NDJSON commit operations (``key``, ``value``) on top of ``branch``, atomically.

        Raises:
            HubError: 404 for an unknown repository, branch or deleted path; 412 if
                ``header["parentCommit"]`` is no longer the branch's head; 4xx for bad input.
        """
        repo = self._repo(repo_type, repo_id)
        with self._lock:
            head = repo.branches.get(branch)
            if head is None:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            parent_commit = header.get("parentCommit")
            if parent_commit and not head.startswith(parent_commit):
                raise HubError(
                    412, f"A commit has happened since. Parent {parent_commit} != {head}"
                )
            files = dict(repo.commits[head].files)
            for operation in operations:
                if isinstance(operation, Entry):
                    files[operation.path] = operation
                else:
                    self._apply(files, *operation)
            return self._add_commit(repo, branch, head, str(header.get("summary", "")), files)

    def _apply(self, files: dict[str, Entry], key: str, value: dict[str, Any]) -> None:
        path = _clean_path(value["path"])
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, "only base64 file contents are supported")
            files[path] = self._regular(path, base64.b64decode(value["content"]))
        elif key == "lfsFile":
            oid, size = value["oid"], value.get("size")
            stored = self.root / "objects" / oid
            if not SHA256_RE.match(oid) or not stored.is_file():
                raise HubError(422, f"LFS object {oid} was not uploaded")
            actual = stored.stat().st_size
            if size is not None and int(size) != actual:
                raise HubError(422, f"LFS object {oid} has size {actual}, not {size}")
            pointer = _LFS_POINTER.format(oid=oid, size=actual).encode()
            files[path] = Entry(path, actual, oid, True, git_blob_sha1(pointer))
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
            if not doomed:
                raise HubError(404, f"No folder {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"unsupported commit operation {key!r}")

    def _regular(self, path: str, data: bytes) -> Entry:
        sha = hashlib.sha256(data).hexdigest()
        target = self.root / "objects" / sha
        if not target.exists():
            tmp = self.root / "incoming" / uuid.uuid4().hex
            tmp.write_bytes(data)
            tmp.replace(target)
        return Entry(path, len(data), sha, False, git_blob_sha1(data))

    # -- LFS objects ------------------------------------------------------------------

    def has_object(self, oid: str, size: int | None = None) -> bool:
        """Is an LFS object with this SHA-256 (and size, if given) stored?"""
        stored = self.root / "objects" / oid
        if not SHA256_RE.match(oid) or not stored.is_file():
            return False
        return size is None or stored.stat().st_size == size

    def start_upload(self, oid: str, size: int, parts: int) -> str:
        """Register an upload of ``parts`` parts (0: one PUT); its id goes into its URLs."""
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = Upload(oid, size, parts)
        return upload_id

    def upload(self, upload_id: str, part: int) -> tuple[Upload, Path]:
        """The upload a PUT of ``part`` belongs to, and the file to write the part to.

        Raises:
            HubError: 403 for an unknown upload or a part it does not have.
        """
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or (part == 0) != (upload.parts == 0) or part > upload.parts:
            raise HubError(403, "unknown or expired upload URL")
        return upload, self.root / "incoming" / f"{upload_id}.{part}"

    def complete_upload(self, upload_id: str, parts: list[dict[str, Any]] | None = None) -> str:
        """Assemble the parts (checking their ETags), check SHA-256 and size, store the object.

        Returns:
            The object's SHA-256.

        Raises:
            HubError: 403 for an unknown upload; 400 for wrong parts, bytes or size.
        """
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        if upload is None:
            raise HubError(403, "unknown or expired upload URL")
        incoming = self.root / "incoming"
        part_files = [incoming / f"{upload_id}.{n}" for n in range(1, upload.parts + 1)]
        try:
            if upload.parts == 0:
                assembled = incoming / f"{upload_id}.0"
            else:
                expected = [
                    {"partNumber": n, "etag": upload.etags.get(n)}
                    for n in range(1, upload.parts + 1)
                ]
                if parts != expected:
                    raise HubError(400, "the parts or their ETags do not match the upload")
                assembled = incoming / f"{upload_id}.assembled"
                with assembled.open("wb") as out:
                    for part_file in part_files:
                        with part_file.open("rb") as src:
                            shutil.copyfileobj(src, out, MiB)
            digest = hashlib.sha256()
            with assembled.open("rb") as src:
                while chunk := src.read(MiB):
                    digest.update(chunk)
            sha, size = digest.hexdigest(), assembled.stat().st_size
            if (sha, size) != (upload.oid, upload.size):
                assembled.unlink()
                raise HubError(400, f"uploaded bytes have sha256 {sha} and size {size}")
            assembled.replace(self.root / "objects" / sha)
            return sha
        finally:
            for part_file in part_files:
                part_file.unlink(missing_ok=True)


def _clean_path(path: str) -> str:
    parts = PurePosixPath(path.lstrip("/")).parts
    if not parts or any(p in ("..", ".") for p in parts):
        raise HubError(400, f"invalid path {path!r}")
    return "/".join(parts)
