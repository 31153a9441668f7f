"""Command-line strings into registry inputs: config files, key=value pairs, URIs, times."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

__all__ = [
    "artifact_from_uri",
    "load_mapping_file",
    "parse_metric_pairs",
    "parse_time",
    "parse_value",
    "set_dotted",
    "split_pair",
]


def split_pair(text: str, *, option: str) -> tuple[str, str]:
    """``"name=value"`` into its two halves (split at the first ``=``).

    Raises:
        typer.BadParameter: when there is no ``=`` or the name is empty.
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not NAME=VALUE", param_hint=option)
    return name.strip(), value


def parse_value(text: str) -> Any:
    """A ``--set`` value: its JSON meaning when it parses as JSON, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_dotted(target: dict[str, Any], dotted_key: str, value: Any, *, option: str) -> None:
    """Set ``a.b.c`` in nested mappings, creating the intermediate ones.

    Raises:
        typer.BadParameter: an intermediate key already holds something that is not a mapping.
    """
    parts = dotted_key.split(".")
    if any(not part for part in parts):
        raise typer.BadParameter(f"{dotted_key!r} has an empty key part", param_hint=option)
    node = target
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise typer.BadParameter(
                f"cannot set {dotted_key!r}: {where!r} is already a {type(child).__name__}",
                param_hint=option,
            )
        node = child
    node[parts[-1]] = value


def parse_metric_pairs(pairs: list[str], *, option: str) -> dict[str, float]:
    """``["accuracy=0.9", ...]`` into a metrics mapping (the registry checks the values).

    Raises:
        typer.BadParameter: a pair is not NAME=NUMBER.
    """
    metrics: dict[str, float] = {}
    for pair in pairs:
        name, text = split_pair(pair, option=option)
        try:
            metrics[name] = float(text)
        except ValueError:
            raise typer.BadParameter(
                f"{pair!r}: the value of a metric must be a number", param_hint=option
            ) from None
    return metrics


def load_mapping_file(path: Path, *, option: str) -> dict[str, Any]:
    """A JSON, YAML or TOML file holding one mapping (the format follows the suffix).

    ``.json`` is JSON, ``.toml`` TOML, anything else YAML (a superset of JSON).

    Raises:
        typer.BadParameter: the file cannot be read or parsed, or it holds no mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {str(path)!r}: {exc.strerror or exc}", param_hint=option
        ) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = _load_yaml(text)
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, and YAML errors re-raised
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise typer.BadParameter(
            f"{str(path)!r} does not parse: {first_line}", param_hint=option
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise typer.BadParameter(
            f"{str(path)!r} must hold a mapping, not a {type(data).__name__}", param_hint=option
        )
    return data


def _load_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


_SCHEME_BACKENDS = {"s3": "s3", "hf": "huggingface"}


def artifact_from_uri(text: str, *, option: str = "--artifact") -> dict[str, str]:
    """``type=uri`` into an artifact given by reference; the URI's scheme picks the backend.

    ``s3://`` means ``s3``, ``hf://`` ``huggingface``; anything else is a local path
    (``file://`` stripped, made absolute).

    Raises:
        typer.BadParameter: the text is not TYPE=URI.
    """
    kind, uri = split_pair(text, option=option)
    uri = uri.strip()
    if not uri:
        raise typer.BadParameter(f"{text!r} has no URI after '='", param_hint=option)
    scheme, sep, _rest = uri.partition("://")
    backend = _SCHEME_BACKENDS.get(scheme.lower()) if sep else None
    if backend is not None:
        return {"type": kind, "storage_backend": backend, "storage_path": uri}
    if sep and scheme.lower() == "file":
        uri = uri[len("file://") :]
    return {
        "type": kind,
        "storage_backend": "local",
        "storage_path": str(Path(uri).expanduser().absolute()),
    }


def parse_time(text: str, *, option: str = "--at") -> datetime:
    """An ISO 8601 time (``2026-11-01``, ``2026-11-01T12:00``, ``...+02:00``, ``...Z``).

    A time without an offset is read as UTC.

    Raises:
        typer.BadParameter: the text is not an ISO 8601 date or time.
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2026-11-01T12:00:00Z", param_hint=option
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
