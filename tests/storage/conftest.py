"""Fixtures for the storage tests: the moto S3 server and the Hub double on loopback."""

from __future__ import annotations

from tests.servers.s3 import s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]
