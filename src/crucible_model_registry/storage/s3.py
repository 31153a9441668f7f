"""S3Storage: artifact bytes in an S3 bucket or any S3-compatible store, through boto3."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

import boto3
import boto3.exceptions
import s3transfer.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from crucible_model_registry.domain.redaction import redact
from crucible_model_registry.errors import (
    ConfigurationError,
    RegistryError,
    StorageError,
    ValidationError,
)
from crucible_model_registry.storage._streaming import (
    PIPELINE_CHUNK_SIZE,
    AtomicFile,
    BackgroundHasher,
    HashingReader,
    HashingWriter,
    check_sha256,
    hash_file,
    open_source_file,
)
from crucible_model_registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    ProgressCallback,
    StoredItem,
    TransferResult,
    blob_path,
    check_remote_path,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

__all__ = ["S3Storage"]

MiB = 1 << 20
_MIN_PART = 5 * MiB  # S3's (and moto's) smallest multipart part
_MAX_PART = 5 * 1024 * MiB
_MAX_PRESIGN = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{1,254}")
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, "
    "or give the access_key_id and secret_access_key options "
    '(CMR_STORAGE_OPTIONS=\'{"bucket": ..., "access_key_id": ..., "secret_access_key": ...}\')'
)


def _check_endpoint(url: object) -> str | None:
    """``endpoint_url`` without any ``user:password@``, once it is a usable http(s) URL.

    S3 signs requests with the access keys; a password in the endpoint authenticates
    nothing, so it is dropped here rather than handed to boto3 (whose debug logs and
    errors would show it).

    Raises:
        ConfigurationError: naming ``endpoint_url`` (its password masked) and the problem.
    """
    if url is None:
        return None
    if not isinstance(url, str):
        raise ConfigurationError("s3: endpoint_url must be a string such as http://host:9000")
    problem = None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        problem = "its port is not a number from 0 to 65535"
    if parts.scheme not in ("http", "https"):
        problem = "it must start with http:// or https://"
    elif not parts.hostname or any(c.isspace() for c in url):
        problem = "it names no valid host (no spaces allowed)"
    if problem:
        raise ConfigurationError(f"s3: endpoint_url {redact(url)!r} is not usable: {problem}")
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urlunsplit(parts)


class S3Storage:
    """Stores each artifact file as the object ``<prefix>/<remote path>`` in ``bucket``.

    Uploads and downloads go through boto3's transfer manager (multipart and ranged parts
    in parallel) while our own reader/writer computes the SHA-256 in the same pass. A
    failed multipart upload is aborted, so no partial object becomes visible. Downloads land
    in a temporary file beside the destination and are renamed only after verification.

    The recorded ``storage_path`` is ``s3://<bucket>/<prefix>/<remote path>``; every method
    accepts that form or the bare remote path.

    Args:
        bucket: the bucket, which must already exist.
        prefix: a key prefix (``team/models``) under which everything is stored.
        region: the region (``us-east-1``), else boto3's default lookup.
        endpoint_url: for S3-compatible stores (MinIO, R2, Ceph, moto); a
            ``user:password@`` in it is dropped (give the access keys instead).
        multipart_threshold: files this large or larger are sent in parts.
        multipart_chunksize: the part size (5 MiB-5 GiB).
        max_concurrency: parts moved in parallel.
        access_key_id: credentials; omitted, boto3's usual chain (environment, profile,
            instance role) applies. They never appear in messages or ``repr``.
        secret_access_key: see ``access_key_id``.
        session_token: see ``access_key_id``.
        max_attempts: attempts per request, retries included (botocore's default if None).
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for data on a connection.
        addressing_style: ``path`` for stores without virtual-host bucket addressing.
        content_addressed: keep every file's bytes also at ``.cmr-blobs/sha256/...`` and
            make a later file with the same bytes by a server-side copy, skipping the
            upload. Off by default: S3 has no links, so each distinct file is then stored
            twice (its path and its blob); worth it where upload bandwidth is scarcer
            than storage (issue 21).

    Raises:
        ConfigurationError: an option is out of range.
    """

    name: str = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_concurrency: int = 4,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        max_attempts: int | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        addressing_style: Literal["auto", "virtual", "path"] = "auto",
        content_addressed: bool = False,
    ) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise ConfigurationError(f"s3: {bucket!r} is not a bucket name")
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_remote_path(prefix, field="prefix")
            except ValidationError as exc:
                raise ConfigurationError(f"s3: bad prefix: {exc}") from exc
        if not _MIN_PART <= multipart_chunksize <= _MAX_PART:
            raise ConfigurationError("s3: multipart_chunksize must be between 5 MiB and 5 GiB")
        if multipart_threshold < 1 or max_concurrency < 1:
            raise ConfigurationError("s3: multipart_threshold and max_concurrency must be >= 1")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigurationError("s3: max_attempts must be >= 1")
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigurationError(
                "s3: give both access_key_id and secret_access_key, or neither"
            )
        self.bucket = bucket
        self.prefix = prefix
        self._content_addressed = bool(content_addressed)
        self.region = region
        self.endpoint_url = _check_endpoint(endpoint_url)
        self._credentials = (access_key_id, secret_access_key, session_token)
        self._client_config = Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts}
            if max_attempts is not None
            else None,
            s3={"addressing_style": addressing_style},
            max_pool_connections=max(10, max_concurrency * 2),
            # Every byte read is checked against its SHA-256 here; botocore's CRC check of
            # whole-object GETs adds nothing, and fails on stores that report a copied
            # multipart object's composite checksum as a full-object one (moto does).
            response_checksum_validation="when_required",
        )
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            io_chunksize=1 * MiB,
            preferred_transfer_client="classic",
        )
        # Parts read ahead of the uploads in flight are held in memory: bound them.
        self._transfer_config.max_in_memory_upload_chunks = max_concurrency + 2
        # Ranged downloads park out-of-order io chunks until the gap before them fills.
        self._transfer_config.max_in_memory_download_chunks = max(
            64, (max_concurrency + 2) * multipart_chunksize // MiB
        )
        self._client_obj: S3Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        endpoint = redact(self.endpoint_url) if self.endpoint_url else None
        return (
            f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, "
            f"region={self.region!r}, endpoint_url={endpoint!r})"
        )

    @property
    def _client(self) -> S3Client:
        # Built on first use, not in __init__, so constructing a backend does no work;
        # boto3 clients are thread-safe, sessions are not, hence one session per client.
        with self._client_lock:
            if self._client_obj is None:
                key, secret, token = self._credentials
                with self._translate("create the S3 client"):
                    session = boto3.session.Session(
                        aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        aws_session_token=token,
                        region_name=self.region,
                    )
                    self._client_obj = session.client(
                        "s3", endpoint_url=self.endpoint_url, config=self._client_config
                    )
            return self._client_obj

    # -- paths -----------------------------------------------------------------------------

    def _relative(self, remote_path: str) -> str:
        """The remote path of either accepted form, checked; refuses other buckets/prefixes."""
        if remote_path.startswith("s3://"):
            bucket, _, key = remote_path[len("s3://") :].partition("/")
            root = f"{self.prefix}/" if self.prefix else ""
            if bucket != self.bucket or not key.startswith(root):
                raise ValidationError.single(
                    "remote_path",
                    f"{remote_path!r} is outside this backend's root s3://{self.bucket}/{root}",
                )
            remote_path = key[len(root) :]
        return check_remote_path(remote_path)

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _storage_path(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"

    # -- errors ----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._credentials:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        text = redact(text)
        # Query strings carry upload ids and, in presigned URLs, signatures: drop them.
        return re.sub(r"\?[^\s\"']*", "", text)

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """SDK and OS errors -> ``StorageError(backend="s3")`` naming no credentials."""
        try:
            yield
        except RegistryError:
            raise
        except ClientError as exc:
            raise self._client_error(action, exc) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StorageError(
                f"could not {action}: no complete AWS credentials were found; " + _CREDENTIALS_HINT,
                backend=self.name,
            ) from exc
        except boto3.exceptions.S3UploadFailedError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):
                raise self._client_error(action, cause) from exc
            raise StorageError(f"could not {action}: upload failed", backend=self.name) from exc
        except (
            BotoCoreError,
            boto3.exceptions.Boto3Error,
            s3transfer.exceptions.RetriesExceededError,
        ) as exc:
            detail = self._scrub(str(exc)) or type(exc).__name__
            raise StorageError(f"could not {action}: {detail}", backend=self.name) from exc
        except OSError as exc:
            raise StorageError(
                f"could not {action}: {exc.strerror or type(exc).__name__}", backend=self.name
            ) from exc
        except ValueError as exc:  # botocore's own checks, such as "Invalid endpoint: <url>"
            detail = self._scrub(str(exc)) or type(exc).__name__
            raise StorageError(f"could not {action}: {detail}", backend=self.name) from exc

    def _client_error(self, action: str, exc: ClientError) -> StorageError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = self._scrub(error.get("Message", ""))
        if code in _NOT_FOUND:
            detail = "no such object"
        elif code == "NoSuchBucket":
            detail = f"bucket {self.bucket!r} does not exist"
        elif code in _BAD_CREDENTIALS:
            detail = f"the credentials were refused ({code}); {_CREDENTIALS_HINT}"
        else:
            detail = f"{code} (HTTP {status}){': ' + message if message else ''}"
        return StorageError(f"could not {action}: {detail}", backend=self.name)

    # -- the protocol ----------------------------------------------------------------------

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Upload a file (multipart above the threshold); see ``StorageBackend.upload``."""
        rel = self._relative(remote_path)
        with open_source_file(local_path) as src:
            size_on_disk = os.fstat(src.fileno()).st_size
            # A seekable reader: s3transfer reads parts from it in order in one thread and
            # may seek back for retries or checksums; the reader hashes each byte once.
            reader = HashingReader(src)
            try:
                with self._translate(f"upload {rel}"):
                    self._client.upload_fileobj(
                        reader,  # type: ignore[arg-type]
                        self.bucket,
                        self._key(rel),
                        Config=self._transfer_config,
                        Callback=progress,
                    )
                digest = reader.hexdigest()
            finally:
                reader.finish()
        if reader.complete and reader.size == size_on_disk:
            size, sha256 = reader.size, digest
        else:  # the SDK skipped around: correctness first, hash the file again
            size, sha256 = hash_file(local_path)
        return TransferResult(storage_path=self._storage_path(rel), size_bytes=size, sha256=sha256)

    def download(
        self,
        remote_path: str,
        local_path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Download an object, verified before it lands; see ``StorageBackend.download``."""
        rel = self._relative(remote_path)
        with self._translate(f"download {rel}"), AtomicFile(Path(local_path)) as out:
            # Non-seekable, so s3transfer hands over ranged parts in order.
            writer = HashingWriter(out.write, progress=progress)
            try:
                self._client.download_fileobj(
                    self.bucket,
                    self._key(rel),
                    writer,  # type: ignore[arg-type]
                    Config=self._transfer_config,
                )
                sha256 = writer.hexdigest()
            finally:
                writer.finish()
            check_sha256(sha256, expected_sha256, backend=self.name, path=self._storage_path(rel))
            out.commit()
        return TransferResult(
            storage_path=self._storage_path(rel), size_bytes=writer.size, sha256=sha256
        )

    def hash_stored(
        self, remote_path: str, *, progress: ProgressCallback | None = None
    ) -> TransferResult:
        """Size and SHA-256 of an object, streamed through the hasher (nothing written)."""
        rel = self._relative(remote_path)
        hasher = BackgroundHasher()
        size = 0
        try:
            with self._translate(f"read {rel}"):
                body = self._client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"]
                for chunk in body.iter_chunks(PIPELINE_CHUNK_SIZE):
                    hasher.update(chunk)  # bytes: immutable, safe to hash later
                    size += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            sha256 = hasher.hexdigest()
        finally:
            hasher.close()
        return TransferResult(storage_path=self._storage_path(rel), size_bytes=size, sha256=sha256)

    def delete(self, remote_path: str) -> None:
        """Delete an object; an absent one is not an error."""
        rel = self._relative(remote_path)
        with self._translate(f"delete {rel}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(rel))

    def exists(self, remote_path: str) -> bool:
        """Is there an object at ``remote_path``?"""
        rel = self._relative(remote_path)
        try:
            with self._translate(f"check {rel}"):
                self._client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and (
                cause.response.get("Error", {}).get("Code") in _NOT_FOUND
            ):
                return False
            raise
        return True

    def url(self, remote_path: str, *, expires_in: int = DEFAULT_URL_EXPIRY) -> str:
        """A presigned GET URL valid for ``expires_in`` seconds (at most 7 days).

        Raises:
            ValidationError: ``expires_in`` is out of range.
        """
        rel = self._relative(remote_path)
        if not 1 <= expires_in <= _MAX_PRESIGN:
            raise ValidationError.single(
                "expires_in", f"must be between 1 and {_MAX_PRESIGN} seconds (7 days)"
            )
        with self._translate(f"presign {rel}"):
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(rel)},
                ExpiresIn=expires_in,
            )

    # -- StoresBlobs (content-addressed bytes) ---------------------------------------------

    @property
    def content_addressed(self) -> bool:
        """Whether files with bytes stored before are made by server-side copies."""
        return self._content_addressed

    def _size_of(self, rel: str) -> int | None:
        try:
            with self._translate(f"check {rel}"):
                head = self._client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and (
                cause.response.get("Error", {}).get("Code") in _NOT_FOUND
            ):
                return None
            raise
        return int(head["ContentLength"])

    def _copy(self, source_rel: str, rel: str, size: int) -> bool:
        """Server-side copy, atomic like an upload; False if the source is gone."""
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": self._key(source_rel)}
        try:
            with self._translate(f"copy {source_rel} to {rel}"):
                if size <= _MAX_PART:  # one request: CopyObject takes up to 5 GiB
                    self._client.copy_object(
                        CopySource=source, Bucket=self.bucket, Key=self._key(rel)
                    )
                else:  # parts copied inside S3, the upload aborted on failure
                    self._client.copy(
                        source, self.bucket, self._key(rel), Config=self._transfer_config
                    )
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and (
                cause.response.get("Error", {}).get("Code") in _NOT_FOUND
            ):
                return False
            raise
        return True

    def link_blob(self, sha256: str, remote_path: str, *, size_bytes: int) -> TransferResult | None:
        """Copy the blob to ``remote_path`` inside S3; None if there is no such blob."""
        rel = self._relative(remote_path)
        blob = blob_path(sha256)
        if self._size_of(blob) != size_bytes or not self._copy(blob, rel, size_bytes):
            return None
        return TransferResult(
            storage_path=self._storage_path(rel), size_bytes=size_bytes, sha256=sha256
        )

    def adopt_blob(self, remote_path: str, sha256: str) -> None:
        """Copy the stored object to the blob of ``sha256`` inside S3, unless it exists."""
        rel = self._relative(remote_path)
        blob = blob_path(sha256)
        if self._size_of(blob) is not None:
            return
        size = self._size_of(rel)
        if size is None or not self._copy(rel, blob, size):
            raise StorageError(f"nothing is stored at {rel!r}", backend=self.name)

    def delete_blob(self, sha256: str) -> None:
        """Delete the blob object; an absent one is not an error."""
        self.delete(blob_path(sha256))

    # -- ListsStoredFiles (garbage collection) ------------------------------------------

    def relative_path(self, storage_path: str) -> str:
        """The remote path of a recorded ``s3://`` URI or bare path (a directory keeps ``/``).

        Raises:
            ValidationError: it names another bucket or lies outside the prefix.
        """
        directory = storage_path.endswith("/")
        rel = self._relative(storage_path[:-1] if directory else storage_path)
        return rel + "/" if directory else rel

    def list_stored(self) -> Iterator[StoredItem]:
        """Every object under the prefix, then every multipart upload never completed."""
        root = f"{self.prefix}/" if self.prefix else ""
        with self._translate("list the stored objects"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    rel = _inside(obj["Key"], root)
                    if rel is not None:
                        yield StoredItem(rel, "file", obj["Size"], _utc(obj["LastModified"]))
        with self._translate("list the incomplete multipart uploads"):
            key_marker, id_marker = "", ""
            while True:
                listed = self._client.list_multipart_uploads(
                    Bucket=self.bucket, Prefix=root, KeyMarker=key_marker, UploadIdMarker=id_marker
                )
                for upload in listed.get("Uploads", []):
                    rel = _inside(upload["Key"], root)
                    if rel is not None:
                        yield StoredItem(
                            rel,
                            "incomplete_upload",
                            None,
                            _utc(upload["Initiated"]),
                            upload_id=upload["UploadId"],
                        )
                if not listed.get("IsTruncated"):
                    break
                key_marker = listed.get("NextKeyMarker", "")
                id_marker = listed.get("NextUploadIdMarker", "")

    def remove_stored(self, item: StoredItem) -> None:
        """Delete a listed object, or abort a listed multipart upload (its parts go with it)."""
        if item.kind != "incomplete_upload":
            self.delete(item.path)
            return
        rel = self._relative(item.path)
        try:
            with self._translate(f"abort the upload of {rel}"):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(rel), UploadId=item.upload_id or ""
                )
        except StorageError as exc:
            cause = exc.__cause__
            if not (
                isinstance(cause, ClientError)
                and cause.response.get("Error", {}).get("Code") in {"NoSuchUpload", *_NOT_FOUND}
            ):
                raise


def _inside(key: str, root: str) -> str | None:
    """``key`` relative to ``root``, or None for a key no artifact could have (``a//b``)."""
    try:
        return check_remote_path(key[len(root) :])
    except ValidationError:
        return None


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
