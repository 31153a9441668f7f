"""A test double of the Hugging Face Hub's HTTP API, served on loopback for the real client.

This is not the Hub. It implements the part of the Hub's HTTP API that ``huggingface_hub``
2.x calls (read in its installed source) so that the unmodified client, given
``endpoint=``, can run against it. Routes, and the client calls behind them:

- ``POST /api/repos/create``, ``DELETE /api/repos/delete``: ``create_repo``, ``delete_repo``
  (a new repository holds a ``.gitattributes``, as on the Hub).
- ``GET /api/{type}s/{repo}[/revision/{rev}]``: ``repo_info`` (also after a no-op commit);
  ``POST /api/{type}s/{repo}/branch/{branch}``: ``create_branch``.
- ``POST /api/{type}s/{repo}/preupload/{rev}``: each file's upload mode (LFS when large,
  binary or named like ``*.bin``) and the ``oid`` stored there, so the client skips no-ops.
- ``POST /api/{type}s/{repo}/commit/{rev}``: NDJSON lines ``header`` (with an optional
  ``parentCommit``, 412 if the branch moved), ``file`` (base64), ``lfsFile``,
  ``deletedFile`` and ``deletedFolder``; ``POST /api/validate-yaml`` for ``README.md``.
- ``POST /{repo}.git/info/lfs/objects/batch`` then ``PUT /lfs-upload/{id}`` (``basic``) or
  ``PUT /lfs-upload/{id}/{part}`` + ``POST /lfs-upload/{id}`` (``multipart``, ETags
  checked), then ``POST /{repo}.git/info/lfs/objects/verify``: the classic LFS upload.
  The upload URLs stand in for presigned S3 URLs (no auth; the received SHA-256 and size
  are checked against the announced ones).
- ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]``: ``list_repo_tree``/``list_repo_files``,
  ``recursive`` or not, paginated by ``Link: rel="next"``.
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: ``file_exists`` and ``hf_hub_download``, with
  ``X-Repo-Commit``, ``ETag`` and ``Content-Length``; LFS files answer a 302 to
  ``/lfs-cdn/{object}`` on a second port (another origin, like the Hub's CDN) carrying
  ``X-Linked-Etag``/``X-Linked-Size``, so the client drops its token when following it.
  Byte ranges are served.

Model repositories sit at ``/{namespace}/{name}``, datasets and spaces under ``/datasets``
and ``/spaces``. Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) as the client expects. The state (file bytes on disk, commits in memory)
is :class:`tests.servers.hub_store.HubStore`; this module serves it over HTTP. Xet storage
is not served (its token route answers 501): the fixtures set
``huggingface_hub.constants.HF_HUB_DISABLE_XET = True`` so the client takes the LFS path.
A test can corrupt one stored file (:meth:`HubStore.corrupt`), commit bytes unchecked
(:meth:`HubStore.put_file`), make requests fail (:meth:`HubDouble.inject_fault`) or act
just before one is served (:meth:`HubDouble.run_before`), and read the request log
(:attr:`HubDouble.requests`).

Fixtures: ``hub_server`` (one per session, requiring its ``token``) and ``hub_repo`` (a
fresh repository id); import them into a test module:
``from tests.servers.hub import hub_repo, hub_server``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from tests.servers.hub_store import OBJECT_RE, SHA256_RE, Entry, HubError, HubStore, MiB

__all__ = ["HubDouble", "RecordedRequest", "hub_repo", "hub_server"]

_REPO_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_XET = "Xet is not served by the Hub test double: set HF_HUB_DISABLE_XET"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the double received."""

    method: str
    path: str
    authorization: str | None


@dataclass
class _Fault:
    method: str
    path_contains: str
    status: int | None  # None: run `action`, then answer the request normally
    remaining: int
    action: Callable[[], object] | None = None


class _BigFileResponse(FileResponse):
    chunk_size = MiB


def _error_response(err: HubError) -> Response:
    headers = {"X-Error-Message": err.message}
    if err.code:
        headers["X-Error-Code"] = err.code
    return JSONResponse({"error": err.message}, status_code=err.status, headers=headers)


class HubDouble(HubStore):
    """The Hub test double: a :class:`HubStore` served by uvicorn in a background thread.

    Args:
        root: where objects and uploads are kept (a fresh temporary directory if None).
        token: if set, every API and repository route requires ``Authorization: Bearer
            <token>`` and answers 401 otherwise; upload and CDN URLs are "signed" instead.
        lfs_threshold: see :class:`HubStore`.
        multipart_threshold: LFS objects at least this large get a multipart upload.
        multipart_chunk_size: the part size announced for multipart uploads.
        tree_page_size: entries per page of a tree listing (pages chained by ``Link``).
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        token: str | None = None,
        lfs_threshold: int = 10 * MiB,
        multipart_threshold: int = 32 * MiB,
        multipart_chunk_size: int = 16 * MiB,
        tree_page_size: int = 1000,
    ) -> None:
        super().__init__(root, lfs_threshold=lfs_threshold)
        self.token = token
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk_size = multipart_chunk_size
        self.tree_page_size = tree_page_size
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.cdn_endpoint = ""

    # -- lifecycle and test helpers ---------------------------------------------------

    def start(self, port: int = 0, cdn_port: int = 0) -> HubDouble:
        """Serve on two loopback ports (the Hub and its "CDN") until :meth:`stop`.

        Args:
            port: the Hub's port (0: a free one).
            cdn_port: the port of the "CDN" that serves LFS files (0: a free one).
        """
        sockets = []
        for number in (port, cdn_port):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Inherited by accepted connections: without it a response's headers and body,
            # sent apart, wait on the client's delayed ACK (~40 ms per request).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", number))
            sockets.append(sock)
        self.endpoint = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{sockets[1].getsockname()[1]}"
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,  # leave the test session's logging configuration alone
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=sockets)),
            name="hub-double",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Hub test double did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and delete the stored bytes."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.remove_files()

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def inject_fault(
        self, *, method: str, path_contains: str, status: int = 403, times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and no effect.

        Prefer 4xx statuses: the client retries 5xx with backoff (seconds per retry).
        """
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_contains, status, times))

    def run_before(
        self, *, method: str, path_contains: str, action: Callable[[], object], times: int = 1
    ) -> None:
        """Run ``action`` just before serving the next ``times`` matching requests.

        For example, a competing commit that lands while a client is between its read and
        its write.
        """
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_contains, None, times, action))

    def requests_matching(self, method: str, path_contains: str) -> list[RecordedRequest]:
        """The logged requests with this method whose path contains ``path_contains``."""
        return [r for r in self.requests if r.method == method.upper() and path_contains in r.path]

    # -- routing ----------------------------------------------------------------------

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        # Split the raw path before unquoting: a quoted '/' (refs%2Fpr%2F1) is one segment.
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        segments = [unquote(part) for part in raw.split("?", 1)[0].strip("/").split("/")]
        method, path = request.method.upper(), "/" + "/".join(segments)
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, request.headers.get("authorization"))
            )
            fault = next(
                (
                    f
                    for f in self._faults
                    if f.remaining and f.method == method and f.path_contains in path
                ),
                None,
            )
            if fault is not None:
                fault.remaining -= 1
        try:
            if fault is not None and fault.action is not None:
                fault.action()
            if fault is not None and fault.status is not None:
                raise HubError(fault.status, "injected fault")
            response = await self._dispatch(request, method, segments)
        except HubError as err:
            response = _error_response(err)
        except (KeyError, ValueError, TypeError) as exc:
            # A 4xx, not a 500: the client would retry a 5xx with backoff for ~20 s.
            response = _error_response(HubError(400, f"malformed request: {exc!r}"))
        await response(scope, receive, send)

    async def _dispatch(self, request: Request, method: str, seg: list[str]) -> Response:
        if seg[0] == "lfs-upload" and len(seg) in (2, 3) and method == "PUT":
            return await self._lfs_put(request, seg[1], int(seg[2]) if len(seg) == 3 else 0)
        if seg[0] == "lfs-upload" and len(seg) == 2 and method == "POST":
            body = await request.json()
            self.complete_upload(seg[1], body.get("parts"))
            return JSONResponse({})
        if seg[0] == "lfs-cdn" and len(seg) == 2 and method in ("GET", "HEAD"):
            target = self.root / "objects" / seg[1]
            if not OBJECT_RE.match(seg[1]) or not target.is_file():
                raise HubError(404, "no such object")
            return _BigFileResponse(target, headers={"ETag": f'"{seg[1]}"'})
        if (
            self.token is not None
            and request.headers.get("authorization") != f"Bearer {self.token}"
        ):
            raise HubError(401, "Invalid credentials in Authorization header")
        if seg[0] == "api":
            return await self._dispatch_api(request, method, seg[1:])
        kind = "models"
        if seg[0] in ("datasets", "spaces"):
            kind, seg = seg[0], seg[1:]
        repo_type = _REPO_KINDS[kind]
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        if len(seg) == 6 and seg[1].endswith(".git") and seg[2:5] == ["info", "lfs", "objects"]:
            repo_id = f"{seg[0]}/{seg[1].removesuffix('.git')}"
            self._repo(repo_type, repo_id)
            body = await request.json()
            if seg[5] == "batch" and method == "POST":
                return self._lfs_batch(repo_type, repo_id, body)
            if seg[5] == "verify" and method == "POST":
                if not self.has_object(str(body.get("oid")), body.get("size")):
                    raise HubError(404, f"LFS object {body.get('oid')} not found")
                return JSONResponse({"success": True})
        raise HubError(404, f"no route for {method} /{'/'.join(seg)}")

    async def _dispatch_api(self, request: Request, method: str, seg: list[str]) -> Response:
        if seg == ["repos", "create"] and method == "POST":
            body = await request.json()
            repo_type = body.get("type") or "model"
            if repo_type not in _URL_PREFIX:
                raise HubError(400, f"invalid repo type {repo_type!r}")
            repo_id, created = self.create_repo(
                repo_type, body.get("organization"), body.get("name"), body.get("visibility")
            )
            url = self._repo_url(repo_type, repo_id)
            if not created:
                return JSONResponse({"error": "You already created this repo", "url": url}, 409)
            return JSONResponse({"url": url, "name": repo_id})
        if seg == ["repos", "delete"] and method == "DELETE":
            body = await request.json()
            repo_id = f"{body.get('organization')}/{body.get('name')}"
            self.delete_repo(body.get("type") or "model", repo_id)
            return JSONResponse({})
        if seg == ["validate-yaml"] and method == "POST":
            return _validate_yaml(str((await request.json()).get("content", "")))
        if len(seg) < 3 or seg[0] not in _REPO_KINDS:
            raise HubError(404, f"no API route /api/{'/'.join(seg)}")
        repo_type, repo_id, rest = _REPO_KINDS[seg[0]], f"{seg[1]}/{seg[2]}", seg[3:]
        action, arg = (rest[0], rest[1]) if len(rest) >= 2 else ("", "")
        if not rest and method == "GET":
            return self._repo_info(repo_type, repo_id, "main")
        if len(rest) == 2 and action == "revision" and method == "GET":
            return self._repo_info(repo_type, repo_id, arg)
        if len(rest) == 2 and action == "preupload" and method == "POST":
            return self._preupload(repo_type, repo_id, arg, await request.json())
        if len(rest) == 2 and action == "commit" and method == "POST":
            return self._commit_ndjson(repo_type, repo_id, arg, await request.body())
        if len(rest) == 2 and action == "branch" and method == "POST":
            start = (await request.json()).get("startingPoint") or "main"
            self.create_branch(repo_type, repo_id, arg, start)
            return JSONResponse({})
        if action == "tree" and method == "GET":
            return self._tree(request, repo_type, repo_id, arg, "/".join(rest[2:]))
        if rest and rest[0] == "xet-write-token":
            raise HubError(501, _XET)
        raise HubError(404, f"no API route /api/{'/'.join(seg)}")

    # -- handlers ---------------------------------------------------------------------

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> Response:
        commit = self._commit(repo_type, repo_id, revision)
        siblings = [{"rfilename": p} for p in sorted(commit.files)]
        return JSONResponse({"id": repo_id, "sha": commit.oid, "siblings": siblings})

    def _preupload(
        self, repo_type: str, repo_id: str, revision: str, body: dict[str, Any]
    ) -> Response:
        commit = self._commit(repo_type, repo_id, revision)
        answer = []
        for item in body["files"]:
            mode = self.upload_mode(
                item["path"], int(item["size"]), base64.b64decode(item["sample"])
            )
            info: dict[str, Any] = {"path": item["path"], "uploadMode": mode, "shouldIgnore": False}
            existing = commit.files.get(item["path"])
            if existing is not None:
                info["oid"] = existing.sha256 if existing.lfs else existing.blob_id
            answer.append(info)
        return JSONResponse({"files": answer, "commitOid": commit.oid})

    def _commit_ndjson(self, repo_type: str, repo_id: str, branch: str, body: bytes) -> Response:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with a header line")
        operations: list[tuple[str, dict[str, Any]] | Entry] = [
            (line["key"], line["value"]) for line in lines[1:]
        ]
        commit = self.commit_operations(repo_type, repo_id, branch, lines[0]["value"], operations)
        url = f"{self._repo_url(repo_type, repo_id)}/commit/{commit.oid}"
        return JSONResponse({"success": True, "commitOid": commit.oid, "commitUrl": url})

    def _tree(
        self, request: Request, repo_type: str, repo_id: str, revision: str, path: str
    ) -> Response:
        commit = self._commit(repo_type, repo_id, revision)
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        prefix = path.strip("/")
        items: dict[str, dict[str, Any]] = {}
        for file_path, entry in commit.files.items():
            if prefix and not file_path.startswith(prefix + "/"):
                continue
            parts = PurePosixPath(file_path[len(prefix) + 1 if prefix else 0 :]).parts
            depth = len(parts) - 1 if recursive else min(1, len(parts) - 1)  # folders above it
            for i in range(1, depth + 1):
                folder = "/".join([*([prefix] if prefix else []), *parts[:i]])
                oid = hashlib.sha1(folder.encode(), usedforsecurity=False).hexdigest()
                items[folder] = {"type": "directory", "oid": oid, "size": 0, "path": folder}
            if recursive or len(parts) == 1:
                items[file_path] = _file_json(entry)
        if prefix and not items:
            raise HubError(404, f"{prefix} does not exist on {revision}", "EntryNotFound")
        ordered = [items[key] for key in sorted(items)]
        start = int(request.query_params.get("cursor", "0"))
        end = start + self.tree_page_size
        headers = {}
        if end < len(ordered):
            query = urlencode({**request.query_params, "cursor": str(end)})
            headers["Link"] = f'<{self.endpoint}{request.url.path}?{query}>; rel="next"'
        return JSONResponse(ordered[start:end], headers=headers)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> Response:
        commit = self._commit(repo_type, repo_id, revision)
        entry = commit.files.get(path)
        headers = {"X-Repo-Commit": commit.oid}
        if entry is None:
            response = _error_response(HubError(404, "Entry not found", "EntryNotFound"))
            response.headers.update(headers)
            return response
        headers["ETag"] = f'"{entry.blob_id}"'
        if not entry.lfs:
            return _BigFileResponse(self.root / "objects" / entry.object_name, headers=headers)
        # The Hub redirects LFS files to a CDN on another origin; the metadata rides on the
        # redirect, and the client drops its Authorization header when following it.
        headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        location = f"{self.cdn_endpoint}/lfs-cdn/{entry.object_name}?sig={uuid.uuid4().hex}"
        return RedirectResponse(location, status_code=302, headers=headers)

    def _lfs_batch(self, repo_type: str, repo_id: str, body: dict[str, Any]) -> Response:
        if body.get("operation") != "upload":
            raise HubError(400, "the double only serves LFS uploads")
        multipart_ok = "multipart" in (body.get("transfers") or ["basic"])
        verify = {"href": f"{self._repo_url(repo_type, repo_id)}.git/info/lfs/objects/verify"}
        objects = []
        for obj in body["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size}
            if not SHA256_RE.match(oid):
                answer["error"] = {"code": 422, "message": "oid must be a SHA-256"}
            elif not self.has_object(oid):  # a stored object gets no actions
                parts = 0
                if multipart_ok and size >= self.multipart_threshold:
                    parts = -(-size // self.multipart_chunk_size)
                href = f"{self.endpoint}/lfs-upload/{self.start_upload(oid, size, parts)}"
                upload: dict[str, Any] = {"href": href}
                if parts:
                    upload["header"] = {
                        "chunk_size": str(self.multipart_chunk_size),
                        **{f"{n:05d}": f"{href}/{n}" for n in range(1, parts + 1)},
                    }
                answer["actions"] = {"upload": upload, "verify": verify}
            objects.append(answer)
        return JSONResponse(
            {"transfer": "multipart" if multipart_ok else "basic", "objects": objects},
            media_type="application/vnd.git-lfs+json",
        )

    async def _lfs_put(self, request: Request, upload_id: str, part: int) -> Response:
        upload, target = self.upload(upload_id, part)
        digest = hashlib.md5(usedforsecurity=False)
        with target.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
                digest.update(chunk)
        etag = f'"{digest.hexdigest()}"'
        if part == 0:
            self.complete_upload(upload_id)
        else:
            with self._lock:
                upload.etags[part] = etag
        return Response(status_code=200, headers={"ETag": etag})


def _validate_yaml(content: str) -> Response:
    import yaml

    match = re.match(r"^\s*---\r?\n([\s\S]*?)\r?\n---[ \t]*(\r?\n|$)", content)
    if match:
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            return JSONResponse({"errors": [{"message": str(exc)}]}, status_code=400)
        if data is not None and not isinstance(data, dict):
            return JSONResponse({"errors": [{"message": "metadata must be a mapping"}]}, 400)
    return JSONResponse({"errors": [], "warnings": []})


def _file_json(entry: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size}
    data["path"] = entry.path
    if entry.lfs:
        data["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return data


_repo_counter = itertools.count(1)


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubDouble]:
    """One Hub test double for the session; the client's Xet path is switched off meanwhile."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
        with HubDouble(token="hf_doubleSecretToken0123456789abcdef") as hub:
            yield hub


@pytest.fixture
def hub_repo(hub_server: HubDouble) -> str:
    """A repository id nobody has used yet in this session (not created)."""
    return f"crucible-tests/repo-{next(_repo_counter)}-{uuid.uuid4().hex[:8]}"


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.servers.hub --port 8471``: serve the double until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.hub",
        description="Serve the test suite's Hugging Face Hub double on loopback (no Xet).",
    )
    parser.add_argument("--port", type=int, default=8471, help="the Hub's port (default 8471)")
    parser.add_argument(
        "--cdn-port", type=int, default=0, help="port for LFS file downloads (default: any free)"
    )
    parser.add_argument("--token", help="require this token (default: accept any request)")
    parser.add_argument(
        "--root", type=Path, help="keep the stored files here (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    hub = HubDouble(args.root, token=args.token).start(args.port, args.cdn_port)
    print(f"Hub double at {hub.endpoint} (LFS downloads from {hub.cdn_endpoint}); Ctrl-C stops it")
    print("Point the registry at it (the double serves no Xet, so the client must not ask):")
    options = {"repo_id": "me/registry", "endpoint": hub.endpoint}
    if args.token:
        options["token"] = args.token
    print("  export HF_HUB_DISABLE_XET=1 CMR_STORAGE_BACKEND=huggingface")
    print(f"  export CMR_STORAGE_OPTIONS='{json.dumps(options)}'", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
