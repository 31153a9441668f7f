"""Fixtures for registry tests that move artifact bytes: the moto S3 server, the Hub double."""

from __future__ import annotations

from tests.servers.hub import hub_repo, hub_server
from tests.servers.s3 import s3_bucket, s3_server

__all__ = ["hub_repo", "hub_server", "s3_bucket", "s3_server"]
