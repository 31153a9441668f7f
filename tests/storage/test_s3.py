"""S3Storage against moto's S3 server through the real boto3: the contract, multipart and faults."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.servers.s3 import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    empty_bucket,
    s3_client,
    start_moto_server,
)
from tests.storage.contract import MiB, StorageContract, sha256_of, write_file

from crucible_model_registry.errors import StorageError, ValidationError
from crucible_model_registry.storage.base import StorageBackend
from crucible_model_registry.storage.s3 import S3Storage

pytestmark = pytest.mark.s3

PREFIX = "team/models"


def make_storage(endpoint_url: str, bucket: str, **options: Any) -> S3Storage:
    options.setdefault("multipart_threshold", 5 * MiB)
    options.setdefault("multipart_chunksize", 5 * MiB)
    return S3Storage(
        bucket,
        prefix=PREFIX,
        region=REGION,
        endpoint_url=endpoint_url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        **options,
    )


def stored_keys(endpoint_url: str, bucket: str) -> set[str]:
    client = s3_client(endpoint_url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


class TestS3Storage(StorageContract):
    @pytest.fixture
    def artifact_storage(self, s3_server: MotoServer, s3_bucket: str) -> S3Storage:
        return make_storage(s3_server.endpoint_url, s3_bucket)

    def stored_files(self, backend: StorageBackend) -> set[str]:
        assert isinstance(backend, S3Storage)
        assert backend.endpoint_url is not None
        keys = stored_keys(backend.endpoint_url, backend.bucket)
        assert all(key.startswith(PREFIX + "/") for key in keys)
        return {key[len(PREFIX) + 1 :] for key in keys}

    def corrupt(self, backend: StorageBackend, remote_path: str) -> None:
        assert isinstance(backend, S3Storage)
        assert backend.endpoint_url is not None
        client = s3_client(backend.endpoint_url)
        key = f"{PREFIX}/{remote_path}"
        data = bytearray(client.get_object(Bucket=backend.bucket, Key=key)["Body"].read() or b"\0")
        data[len(data) // 2] ^= 0xFF
        client.put_object(Bucket=backend.bucket, Key=key, Body=bytes(data))


@pytest.fixture
def storage(s3_server: MotoServer, s3_bucket: str) -> S3Storage:
    return make_storage(s3_server.endpoint_url, s3_bucket)


def test_storage_path_is_an_s3_uri(storage: S3Storage, s3_bucket: str, tmp_path: Path) -> None:
    result = storage.upload(write_file(tmp_path / "a.bin", 10), "m/1/other/a.bin")
    assert result.storage_path == f"s3://{s3_bucket}/{PREFIX}/m/1/other/a.bin"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://another-bucket/team/models/m/1/other/a.bin",
        "s3://{bucket}/other-prefix/m/1/other/a.bin",
        "s3://{bucket}/team/models/../escape.bin",
        "s3://{bucket}/team/modelsX/a.bin",
    ],
)
def test_uris_outside_the_bucket_and_prefix_are_refused(
    storage: S3Storage, s3_bucket: str, tmp_path: Path, uri: str
) -> None:
    uri = uri.format(bucket=s3_bucket)
    with pytest.raises(ValidationError):
        storage.download(uri, tmp_path / "x.bin")
    with pytest.raises(ValidationError):
        storage.exists(uri)
    assert not (tmp_path / "x.bin").exists()


def test_a_64_mib_file_round_trips_through_multipart(
    storage: S3Storage, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "big.bin", 64 * MiB + 123)
    up = storage.upload(src, "m/1/checkpoint/big.bin")
    assert (up.size_bytes, up.sha256) == (64 * MiB + 123, sha256_of(src))

    head = s3_client(s3_server.endpoint_url).head_object(
        Bucket=s3_bucket, Key=f"{PREFIX}/m/1/checkpoint/big.bin"
    )
    assert head["ETag"].strip('"').endswith("-13")  # 13 parts of 5 MiB: multipart was used

    dest = tmp_path / "got.bin"
    down = storage.download(up.storage_path, dest, expected_sha256=up.sha256)
    assert down.sha256 == up.sha256
    assert sha256_of(dest) == up.sha256
    src.unlink()
    dest.unlink()
    storage.delete(up.storage_path)


def test_a_failing_multipart_upload_is_aborted(
    storage: S3Storage, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    src = write_file(tmp_path / "big.bin", 16 * MiB)
    sent = 0

    def interrupt(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > 6 * MiB:
            raise RuntimeError("interrupted by the caller")

    with pytest.raises(RuntimeError):
        storage.upload(src, "m/1/checkpoint/big.bin", progress=interrupt)

    client = s3_client(s3_server.endpoint_url)
    assert stored_keys(s3_server.endpoint_url, s3_bucket) == set()
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_the_server_stopping_mid_upload_raises_storage_error_and_leaves_no_object(
    s3_server: MotoServer, tmp_path: Path
) -> None:
    # A second server over the same in-memory store: stopping it leaves the session
    # server running to look at what is left behind.
    doomed = start_moto_server()
    bucket = f"cmr-doomed-{uuid.uuid4().hex[:8]}"
    s3_client(s3_server.endpoint_url).create_bucket(Bucket=bucket)
    storage = make_storage(
        doomed.endpoint_url, bucket, max_attempts=1, connect_timeout=2, read_timeout=5
    )
    src = write_file(tmp_path / "big.bin", 24 * MiB)
    sent = 0
    stopped = threading.Event()

    def stop_midway(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > 6 * MiB and not stopped.is_set():
            stopped.set()
            doomed.stop()

    try:
        with pytest.raises(StorageError) as info:
            storage.upload(src, "m/1/checkpoint/big.bin", progress=stop_midway)
        assert info.value.backend == "s3"
        assert stopped.is_set()
        assert stored_keys(s3_server.endpoint_url, bucket) == set()
    finally:
        if not stopped.is_set():
            doomed.stop()
        empty_bucket(s3_client(s3_server.endpoint_url), bucket)


def test_presigned_url_serves_the_bytes(storage: S3Storage, tmp_path: Path) -> None:
    src = write_file(tmp_path / "a.bin", 5000)
    result = storage.upload(src, "m/1/other/a.bin")
    url = storage.url(result.storage_path, expires_in=60)
    assert "X-Amz-Signature" in url or "Signature" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == src.read_bytes()


@pytest.mark.parametrize("expires_in", [0, -1, 7 * 24 * 3600 + 1])
def test_url_expiry_out_of_range_is_refused(storage: S3Storage, expires_in: int) -> None:
    with pytest.raises(ValidationError) as info:
        storage.url("m/1/other/a.bin", expires_in=expires_in)
    assert "expires_in" in info.value.errors


def test_sdk_errors_name_no_credentials(s3_server: MotoServer, tmp_path: Path) -> None:
    secret = "very-secret-" + uuid.uuid4().hex
    storage = S3Storage(
        "no-such-bucket-" + uuid.uuid4().hex[:8],
        region=REGION,
        endpoint_url=s3_server.endpoint_url,
        access_key_id="AKIDTESTING",
        secret_access_key=secret,
        session_token="token-" + secret,
    )
    with pytest.raises(StorageError) as info:
        storage.upload(write_file(tmp_path / "a.bin", 10), "m/1/other/a.bin")
    assert info.value.backend == "s3"
    assert secret not in str(info.value)
    assert secret not in repr(storage)


def test_an_unreachable_endpoint_is_a_storage_error(tmp_path: Path) -> None:
    server = start_moto_server()
    endpoint = server.endpoint_url
    server.stop()
    storage = S3Storage(
        "bucket",
        endpoint_url=endpoint,
        region=REGION,
        max_attempts=1,
        connect_timeout=1,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    with pytest.raises(StorageError):
        storage.exists("m/1/other/a.bin")
    with pytest.raises(StorageError):
        storage.download("m/1/other/a.bin", tmp_path / "a.bin")
    assert list(tmp_path.iterdir()) == []
