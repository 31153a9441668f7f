"""Command-line strings into registry inputs: config files, key=value pairs, URIs, times.

Config and policy files are parsed within bounds, whoever wrote them: at most
``MAX_FILE_BYTES`` on disk, and a YAML file whose aliases would expand it beyond the
registry's config limits (``MAX_CONFIG_BYTES`` of canonical JSON, ``MAX_CONFIG_DEPTH``
levels) is refused before it is expanded. A file that does not parse is reported with the
line and column of the problem.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crucible_model_registry.domain.config_hash import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH

if TYPE_CHECKING:
    import yaml

__all__ = [
    "MAX_FILE_BYTES",
    "artifact_from_uri",
    "load_mapping_file",
    "parse_metric_pairs",
    "parse_time",
    "parse_value",
    "set_dotted",
    "split_pair",
]


MAX_FILE_BYTES = 8 * 1024 * 1024
"""The largest config or policy file read (8 MiB)."""


class _ParseError(ValueError):
    """A file's text does not parse; the message starts with where."""


def split_pair(text: str, *, option: str) -> tuple[str, str]:
    """``"name=value"`` into its two halves (split at the first ``=``).

    Raises:
        typer.BadParameter: when there is no ``=`` or the name is empty.
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not NAME=VALUE", param_hint=option)
    return name.strip(), value


def parse_value(text: str, *, option: str = "--set") -> Any:
    """A ``--set`` value: its JSON meaning when it parses as JSON, else the string itself.

    Raises:
        typer.BadParameter: the value nests too deeply to parse.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise typer.BadParameter(
            f"the value nests more than {MAX_CONFIG_DEPTH} levels deep", param_hint=option
        ) from None
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
        typer.BadParameter: the file cannot be read or parsed (the message gives the line
            and column), is larger than ``MAX_FILE_BYTES``, would expand beyond the config
            limits, or holds no mapping.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {str(path)!r}: {exc.strerror or exc}", param_hint=option
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise typer.BadParameter(
            f"{str(path)!r} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", param_hint=option
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise typer.BadParameter(
            f"{str(path)!r} is not UTF-8 text (line {line}, byte {exc.start})", param_hint=option
        ) from None
    try:
        data = _parse_text(text, path.suffix.lower())
    except _ParseError as exc:
        raise typer.BadParameter(
            f"{str(path)!r} does not parse: {exc}", param_hint=option
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise typer.BadParameter(
            f"{str(path)!r} must hold a mapping, not a {type(data).__name__}", param_hint=option
        )
    return data


def _parse_text(text: str, suffix: str) -> Any:
    """JSON, TOML or YAML text as Python values.

    Raises:
        _ParseError: saying where (line and column) and what is wrong.
    """
    try:
        if suffix == ".json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise _ParseError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        if suffix == ".toml":
            import tomllib

            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise _ParseError(_toml_problem(str(exc))) from None
        return _load_yaml(text)
    except RecursionError:
        raise _ParseError(f"it nests more than {MAX_CONFIG_DEPTH} levels deep") from None


_TOML_WHERE = re.compile(
    r"^(?P<problem>.*?)\s*\(at (?P<where>line \d+, column \d+|end of document)\)$"
)


def _toml_problem(message: str) -> str:
    # Python 3.11's TOMLDecodeError has no position attributes, only "... (at line 3, column 5)".
    found = _TOML_WHERE.match(message.strip())
    return f"{found['where']}: {found['problem']}" if found else message


def _load_yaml(text: str) -> Any:
    import yaml

    # libyaml (when present) also refuses nesting past 1000 levels while parsing.
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _ParseError(_yaml_problem(exc)) from None
        except yaml.YAMLError as exc:
            raise _ParseError(str(exc).splitlines()[0] if str(exc) else "not YAML") from None
        if node is None:
            return None
        _check_expansion(node)
        try:
            return loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            raise _ParseError(_yaml_problem(exc)) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not YAML"
    if exc.context and exc.problem:
        problem = f"{exc.problem} ({exc.context})"
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases would expand it beyond the config limits.

    An alias is a reference, so a 324-byte file of nested aliases ("billion laughs")
    stands for gigabytes once anything walks it. Each node's expanded size is computed
    once (aliased nodes are shared), so this costs time in the file's size, not in what
    it would expand to.

    Raises:
        _ParseError: naming the limit that would be exceeded.
    """
    import yaml

    # Per node: a lower bound of its canonical JSON bytes, as the registry counts them,
    # and how many levels deep it nests (an aliased node can be reached at any depth).
    known: dict[int, tuple[int, int]] = {}
    limit_mib = MAX_CONFIG_BYTES // (1024 * 1024)

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_CONFIG_DEPTH:
            raise _ParseError(f"it nests more than {MAX_CONFIG_DEPTH} levels deep")
        found = known.get(id(node))
        if found is None:
            if isinstance(node, yaml.ScalarNode):
                found = (len(node.value) + 1, 0)
            else:
                children = (
                    node.value
                    if isinstance(node, yaml.SequenceNode)
                    else [part for pair in node.value for part in pair]
                )
                measured = [measure(child, depth + 1) for child in children]
                found = (
                    2 + sum(size for size, _ in measured),
                    1 + max((height for _, height in measured), default=0),
                )
            known[id(node)] = found
        size, height = found
        if depth + height > MAX_CONFIG_DEPTH:
            raise _ParseError(f"it nests more than {MAX_CONFIG_DEPTH} levels deep")
        if size > MAX_CONFIG_BYTES:
            mark = node.start_mark
            raise _ParseError(
                f"line {mark.line + 1}, column {mark.column + 1}: its aliases would expand it "
                f"beyond {limit_mib} MiB, the limit of a config"
            )
        return found

    measure(root, 0)


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
