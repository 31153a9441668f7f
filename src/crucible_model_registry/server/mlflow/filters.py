"""MLflow's search filters, ordering and page tokens, translated; nothing is silently ignored.

A filter is comparisons joined by ``AND`` (MLflow has no ``OR``):

- ``name`` with ``=``, ``!=``, ``LIKE``, ``ILIKE``, ``IN (...)``, ``NOT IN (...)``;
- ``tags.<key>`` (or ``tag.<key>``; a key with dots in backticks or double quotes) with
  ``=``, ``!=``, ``LIKE``, ``ILIKE``; ``!=`` also matches a model or version without the
  tag, as MLflow's always-added ``tag.`mlflow.prompt.is_prompt` != 'true'`` needs;
- versions only: ``run_id`` and ``source_path`` (``=``, ``!=``, ``LIKE``, ``ILIKE``,
  ``IN``, ``NOT IN``), and ``version_number`` (``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
  ``IN``, ``NOT IN`` with integers).

Anything else (another key or operator, ``OR``, a malformed value) raises
``ValidationError``, which MLflow's client sees as ``INVALID_PARAMETER_VALUE``. The
``name =``/``name IN``, ``tags.<key> =`` and ``run_id =`` conditions become our query DSL
(``where_model_name``, ``where_metadata``), so the database does the narrowing; every
condition is then checked on the records themselves, so the answer is exact.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from crucible_model_registry.domain.records import Model, ModelVersion
from crucible_model_registry.errors import ValidationError
from crucible_model_registry.query import Query
from crucible_model_registry.server.mlflow.convert import (
    MLFLOW_KEY,
    mlflow_info,
    mlflow_number,
    mlflow_tags,
)

__all__ = [
    "Condition",
    "decode_page_token",
    "encode_page_token",
    "model_sort_key",
    "parse_filter",
    "parse_order_by",
    "to_query",
    "version_sort",
]

Kind = Literal["models", "versions"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<paren>[(),])
    | (?P<word>(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)(?:\.(?:[A-Za-z0-9_.-]+|`[^`]+`|"[^"]+"))*)
    )""",
    re.VERBOSE,
)

_OPS: dict[str, set[str]] = {
    "name": {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"},
    "run_id": {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"},
    "source_path": {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"},
    "version_number": {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"},
    "tag": {"=", "!=", "LIKE", "ILIKE"},
}
_KEYS: dict[Kind, set[str]] = {
    "models": {"name", "tag"},
    "versions": {"name", "run_id", "source_path", "version_number", "tag"},
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison: ``key`` (``tag`` with ``tag_key``), operator and value(s)."""

    key: str
    op: str
    value: str | int | tuple[str | int, ...]
    tag_key: str | None = None


def _bad(message: str) -> ValidationError:
    return ValidationError.single("filter", message)


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad(f"cannot read {text[position:].strip()[:30]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


def _unquote(token: str) -> str:
    quote = token[0]
    if quote in "'\"`" and token.endswith(quote) and len(token) >= 2:
        return token[1:-1].replace(quote * 2, quote)
    return token


def _key(word: str, kind: Kind) -> tuple[str, str | None]:
    head, _, rest = word.partition(".")
    head = _unquote(head).lower()
    if head in ("tags", "tag") and rest:
        return "tag", _unquote(rest)
    if rest or head not in _KEYS[kind] or head == "tag":
        allowed = [*sorted(k for k in _KEYS[kind] if k != "tag"), "tags.<key>"]
        raise _bad(f"cannot search {kind} by {word!r}; use {', '.join(allowed)}")
    return head, None


def _value(kind: str, token: str, key: str) -> str | int:
    if key == "version_number":
        if kind != "number" or "." in token:
            raise _bad(f"version_number compares with whole numbers, not {token}")
        return int(token)
    if kind != "string":
        raise _bad(f"{key} compares with a quoted string, not {token}")
    return _unquote(token)


def parse_filter(text: str | None, kind: Kind) -> list[Condition]:
    """The conditions of an MLflow filter string (all must hold).

    Raises:
        ValidationError: anything this module's docstring does not list.
    """
    if text is None or not text.strip():
        return []
    tokens = _tokens(text)
    conditions: list[Condition] = []
    i = 0
    while True:
        condition, i = _condition(tokens, i, kind, text)
        conditions.append(condition)
        if i == len(tokens):
            return conditions
        if tokens[i][0] == "word" and tokens[i][1].upper() == "AND":
            i += 1
            continue
        raise _bad(f"conditions are joined by AND only, not {tokens[i][1]!r}")


def _operator(tokens: list[tuple[str, str]], i: int) -> tuple[str | None, int]:
    if i < len(tokens) and tokens[i][0] == "op":
        return ("!=" if tokens[i][1] == "<>" else tokens[i][1]), i + 1
    if i < len(tokens) and tokens[i][0] == "word":
        word = tokens[i][1].upper()
        if word == "NOT" and i + 1 < len(tokens) and tokens[i + 1][1].upper() == "IN":
            return "NOT IN", i + 2
        if word in ("LIKE", "ILIKE", "IN"):
            return word, i + 1
    return None, i


def _condition(
    tokens: list[tuple[str, str]], i: int, kind: Kind, text: str
) -> tuple[Condition, int]:
    if i >= len(tokens) or tokens[i][0] != "word":
        raise _bad(f"expected a key such as name or tags.<key> in {text!r}")
    key, tag_key = _key(tokens[i][1], kind)
    op, i = _operator(tokens, i + 1)
    if op is None or op not in _OPS[key]:
        shown = key if tag_key is None else f"tags.{tag_key}"
        raise _bad(f"{shown} takes {', '.join(sorted(_OPS[key]))}")
    if op not in ("IN", "NOT IN"):
        if i >= len(tokens):
            raise _bad(f"{op} needs a value")
        return Condition(key, op, _value(tokens[i][0], tokens[i][1], key), tag_key), i + 1
    if i >= len(tokens) or tokens[i] != ("paren", "("):
        raise _bad(f"{op} needs a parenthesised list, e.g. ('a', 'b')")
    i += 1
    items: list[str | int] = []
    while True:
        if i >= len(tokens):
            raise _bad("unclosed list")
        items.append(_value(tokens[i][0], tokens[i][1], key))
        i += 1
        if i < len(tokens) and tokens[i] == ("paren", ","):
            i += 1
        elif i < len(tokens) and tokens[i] == ("paren", ")"):
            return Condition(key, op, tuple(items), tag_key), i + 1
        else:
            raise _bad("a list's items are separated by commas and closed by ')'")


def to_query(conditions: Sequence[Condition]) -> Query:
    """The part of a version filter our query DSL states, to narrow what is read.

    ``name =``/``name IN`` become ``where_model_name`` (either of the names);
    ``tags.<key> =`` and ``run_id =`` become ``where_metadata`` (keys the DSL can follow).
    The rest is checked on the records (:func:`matches_version`), so the answer is exact.
    """
    query = Query()
    for c in conditions:
        if c.key == "name" and c.op in ("=", "IN"):
            names = c.value if isinstance(c.value, tuple) else (c.value,)
            either = [Query().where_model_name(str(n)) for n in names]
            query = query & functools.reduce(operator.or_, either)
        elif c.op == "=" and c.key in ("tag", "run_id") and isinstance(c.value, str):
            path = [MLFLOW_KEY, "run_id"]
            if c.key == "tag":
                path = [MLFLOW_KEY, "tags", c.tag_key or ""]
            # A key the DSL cannot follow narrows nothing: the records are checked anyway.
            with contextlib.suppress(ValidationError):
                query = query.where_metadata(path, c.value)
    return query


def _like(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    parts = ["%" if ch == "%" else "_" if ch == "_" else re.escape(ch) for ch in pattern]
    body = "".join(".*" if p == "%" else "." if p == "_" else p for p in parts)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _compare(actual: str | int | None, c: Condition) -> bool:
    if c.op == "!=" and actual is None:
        return True
    if actual is None:
        return c.op == "NOT IN"
    if c.op == "=":
        return actual == c.value
    if c.op == "!=":
        return actual != c.value
    if c.op in ("LIKE", "ILIKE"):
        return _like(str(c.value), ignore_case=c.op == "ILIKE").fullmatch(str(actual)) is not None
    if c.op == "IN":
        return isinstance(c.value, tuple) and actual in c.value
    if c.op == "NOT IN":
        return isinstance(c.value, tuple) and actual not in c.value
    assert isinstance(actual, int)
    assert isinstance(c.value, int)
    return {
        "<": actual < c.value,
        "<=": actual <= c.value,
        ">": actual > c.value,
        ">=": actual >= c.value,
    }[c.op]


def matches_model(model: Model, conditions: Sequence[Condition]) -> bool:
    """Does the model satisfy every condition?"""
    tags = mlflow_tags(model.metadata)
    for c in conditions:
        actual = model.name if c.key == "name" else tags.get(c.tag_key or "")
        if not _compare(actual, c):
            return False
    return True


def matches_version(version: ModelVersion, conditions: Sequence[Condition]) -> bool:
    """Does the version satisfy every condition?"""
    info = mlflow_info(version.metadata)
    tags = mlflow_tags(version.metadata)
    for c in conditions:
        actual: str | int | None
        if c.key == "name":
            actual = version.model_name
        elif c.key == "run_id":
            actual = info.get("run_id")
        elif c.key == "source_path":
            actual = info.get("source")
        elif c.key == "version_number":
            actual = mlflow_number(version)
        else:
            actual = tags.get(c.tag_key or "")
        if not _compare(actual, c):
            return False
    return True


_ORDER = re.compile(r"\s*([A-Za-z_]+)(?:\s+(ASC|DESC))?\s*", re.IGNORECASE)
_ORDER_KEYS: dict[Kind, tuple[str, ...]] = {
    "models": ("name", "last_updated_timestamp", "timestamp"),
    "versions": ("name", "version_number", "creation_timestamp", "last_updated_timestamp"),
}


def parse_order_by(items: Sequence[str], kind: Kind) -> list[tuple[str, bool]]:
    """``[(key, descending)]`` from MLflow's ``order_by`` strings.

    Raises:
        ValidationError: an unknown key or a malformed clause.
    """
    order: list[tuple[str, bool]] = []
    for item in items:
        match = _ORDER.fullmatch(item)
        key = match.group(1).lower() if match else None
        if match is None or key not in _ORDER_KEYS[kind]:
            raise ValidationError.single(
                "order_by", f"{item!r}: order by {', '.join(_ORDER_KEYS[kind])} [ASC|DESC]"
            )
        key = "last_updated_timestamp" if key == "timestamp" else key
        order.append((key, (match.group(2) or "ASC").upper() == "DESC"))
    return order


def _sort(items: list[Any], order: Sequence[tuple[str, bool]], value: Callable[..., Any]) -> None:
    # Stable sorts from the last key to the first give a multi-key order with mixed directions.
    for key, descending in reversed(order):
        items.sort(key=functools.partial(_by, value, key), reverse=descending)


def _by(value: Callable[..., Any], key: str, item: Any) -> Any:
    return value(item, key)


def model_sort_key(model: Model, key: str) -> Any:
    return model.name if key == "name" else model.updated_at


def sort_models(models: list[Model], order: Sequence[tuple[str, bool]]) -> None:
    """Sort in place: the given order, then name ascending (MLflow's tiebreak)."""
    _sort(models, [*order, ("name", False)], model_sort_key)


def _version_value(version: ModelVersion, key: str) -> Any:
    if key == "name":
        return version.model_name
    if key == "version_number":
        return mlflow_number(version)
    if key == "creation_timestamp":
        return version.created_at
    return version.updated_at


def version_sort(versions: list[ModelVersion], order: Sequence[tuple[str, bool]]) -> None:
    """Sort in place: the given order, else MLflow's default (last updated first), then
    name ascending and version number descending."""
    base = list(order) or [("last_updated_timestamp", True)]
    _sort(versions, [*base, ("name", False), ("version_number", True)], _version_value)


def _fingerprint(parts: Sequence[object]) -> str:
    return hashlib.sha256(json.dumps(list(parts), default=str).encode()).hexdigest()[:16]


def encode_page_token(offset: int, query: Sequence[object]) -> str:
    """An opaque token for the results from ``offset`` on of the same search."""
    doc = json.dumps({"offset": offset, "search": _fingerprint(query)})
    return base64.urlsafe_b64encode(doc.encode()).decode()


def decode_page_token(token: str | None, query: Sequence[object]) -> int:
    """The offset a page token stands for (0 for none).

    Raises:
        ValidationError: a malformed token, or one from a different search.
    """
    if not token:
        return 0
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = doc["offset"]
        same = doc["search"] == _fingerprint(query)
    except (ValueError, KeyError, TypeError):
        raise ValidationError.single("page_token", "is not a page token of this server") from None
    if not isinstance(offset, int) or offset < 0 or not same:
        raise ValidationError.single(
            "page_token", "belongs to a different search (filter and order_by must not change)"
        )
    return offset
