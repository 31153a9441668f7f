"""Secrets kept out of messages, logs, spans and reprs: the one place that masks them.

What is masked, wherever it appears in a text: the password of a URL's userinfo
(``scheme://user:password@host``), the value of a query parameter whose name says it is a
secret (``?X-Amz-Signature=…``, ``&token=…``, ``&password=…``), and ``password=…`` in a
libpq-style connection string. Mappings of options (``CMR_STORAGE_OPTIONS``) have the
values of their secret-named keys masked and the rest redacted as text.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from typing import Final

__all__ = [
    "LOG_FILTER",
    "MASK",
    "RedactSecrets",
    "is_secret_name",
    "protect_logger",
    "redact",
    "redact_exception",
    "redact_options",
]

MASK: Final = "***"

# Names (any case, "_" or "-") that mark a secret: parts of a word, and whole words.
_SECRET_PARTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "signature",
    "credential",
    "auth",
    "apikey",
    "api_key",
    "accesskey",
    "access_key",
    "private",
    "session",
)
_SECRET_WORDS = frozenset({"sig", "key", "x-amz-security-token", "code"})

# scheme://user:password@ — the password runs to the last "@" before a space, so that an
# unencoded "/" or "@" in it is masked too (masking more than the password is the safe way
# to be wrong).
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\"'<>]*:)(?P<secret>[^\s\"'<>]*)@"
)
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[^=&#\s\"'<>?]+)=)(?P<value>[^&#\s\"'<>]*)")
_CONNINFO = re.compile(
    r"(?P<head>(?<![\w\-])(?:ssl)?(?:password|passwd|pwd)\s*=\s*)(?P<value>'[^']*'|[^\s'&]+)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Does an option or parameter called ``name`` hold a secret (a password, a token, ...)?"""
    lowered = name.lower()
    return lowered in _SECRET_WORDS or any(part in lowered for part in _SECRET_PARTS)


def _mask_param(match: re.Match[str]) -> str:
    if not match.group("value") or not is_secret_name(match.group("name")):
        return match.group(0)
    return match.group("head") + MASK


def redact(text: str) -> str:
    """``text`` with URL passwords, secret query parameters and conninfo passwords masked.

    Works on a bare URL (``redact("postgresql://u:pw@h/db")``) and on any message that
    holds URLs (``"Invalid endpoint: http://minio:pw@bad host:9000"``); text without them
    comes back unchanged.
    """
    if "=" not in text and "@" not in text:
        return text
    text = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _QUERY_PARAM.sub(_mask_param, text)
    return _CONNINFO.sub(lambda m: m.group("head") + MASK, text)


def redact_options(options: Mapping[str, object]) -> dict[str, object]:
    """Backend options for display: secret-named values masked, text values redacted."""
    shown: dict[str, object] = {}
    for key, value in options.items():
        if value is not None and is_secret_name(str(key)):
            shown[key] = MASK
        elif isinstance(value, str):
            shown[key] = redact(value)
        elif isinstance(value, Mapping):
            shown[key] = redact_options(value)
        else:
            shown[key] = value
    return shown


def redact_exception(error: BaseException) -> tuple[str, str]:
    """An exception's message and its whole formatted traceback (causes included), redacted."""
    return redact(str(error)), redact("".join(traceback.format_exception(error)))


class RedactSecrets(logging.Filter):
    """A logging filter that redacts a record's message and traceback before any handler.

    Attached to the registry's own loggers, so every handler (caplog included) sees the
    redacted text: the message is formatted here, and the traceback too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(record.exc_info[1])))
            if record.exc_text.endswith("\n"):
                record.exc_text = record.exc_text[:-1]
        return True


LOG_FILTER: Final = RedactSecrets()
"""The filter on every logger of the registry (``crucible_model_registry`` and children)."""


def protect_logger(logger: logging.Logger) -> logging.Logger:
    """Attach :data:`LOG_FILTER` to ``logger`` (once) and return it."""
    if LOG_FILTER not in logger.filters:
        logger.addFilter(LOG_FILTER)
    return logger
