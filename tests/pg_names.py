"""Names of the PostgreSQL databases the tests create, under a prefix ``CMR_TEST_DB_PREFIX`` sets.

Two checkouts sharing one server set different prefixes (``CMR_TEST_DB_PREFIX=alice_``) so
that neither drops or lists the other's databases.
"""

from __future__ import annotations

import os
import re
import uuid

__all__ = ["DEFAULT_PREFIX", "database_name", "database_prefix"]

DEFAULT_PREFIX = "cmr_test_"
_SAFE = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def database_prefix() -> str:
    """``CMR_TEST_DB_PREFIX``, else ``cmr_test_``.

    Raises:
        ValueError: the prefix is not lower-case letters, digits and underscores (at most
            40, not starting with a digit), which keeps every name a plain identifier.
    """
    prefix = os.environ.get("CMR_TEST_DB_PREFIX", "") or DEFAULT_PREFIX
    if not _SAFE.fullmatch(prefix):
        raise ValueError(
            f"CMR_TEST_DB_PREFIX={prefix!r}: use lower-case letters, digits and underscores "
            "(at most 40, not starting with a digit), e.g. CMR_TEST_DB_PREFIX=alice_"
        )
    return prefix


def database_name(purpose: str = "") -> str:
    """A new database name: the prefix, ``purpose``, this process id and a random part."""
    middle = f"{purpose}_" if purpose else ""
    return f"{database_prefix()}{middle}{os.getpid()}_{uuid.uuid4().hex[:8]}"
