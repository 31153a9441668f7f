"""The moto S3 server on loopback, as pytest fixtures, for tests that drive the real boto3.

moto's in-process servers share one in-memory store, so a second server started by
:func:`start_moto_server` (which a test may stop mid-transfer) sees the buckets of the
session server, and the session server shows what the stopped one left behind.
The server keeps objects in memory at about 3x their size: keep objects <= 64 MiB and
use :func:`s3_bucket`, which empties and removes its bucket afterwards.

Without moto the S3 tests skip, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MOTO_HOW_TO = (
    "S3 tests skipped: moto's server is not installed; "
    "pip install 'moto[server]' (part of the dev extra)"
)
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: its endpoint and a way to stop it."""

    endpoint_url: str
    handle: Any

    def stop(self) -> None:
        """Stop serving; connections made afterwards are refused."""
        self.handle.stop()


def start_moto_server() -> MotoServer:
    """Start a moto S3 server on 127.0.0.1 and a free port (skips, or fails in CI)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if IN_CI:
            pytest.fail("CI=true but " + MOTO_HOW_TO)
        pytest.skip(MOTO_HOW_TO)
    # werkzeug logs each request at INFO to stderr; that noise drowns test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return MotoServer(endpoint_url=f"http://{host}:{port}", handle=server)


def s3_client(endpoint_url: str) -> Any:
    """A plain boto3 client for the server, to inspect what the code under test stored."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object and pending multipart upload of ``bucket``, then the bucket."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """One moto S3 server for the test session."""
    server = start_moto_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> Iterator[str]:
    """A fresh, empty bucket on the session server, removed with its contents afterwards."""
    client = s3_client(s3_server.endpoint_url)
    bucket = f"cmr-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        empty_bucket(client, bucket)
