"""The JSON columns' deserializer (issue 21) reads exactly what json.loads reads."""

from __future__ import annotations

import json

import pytest

from crucible_model_registry.store.engine import load_json

DOCUMENTS = [
    "{}",
    "[]",
    " {}",
    "{} ",
    '{"lr": 0.0001, "layers": [1, 2.5, null, true, false], "name": "caf\\u00e9"}',
    '"text"',
    "1e400",
    "-0",
    "NaN",
    '{"a": {"b": {"c": []}}}',
    "[1, 2]\n",
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_reads_what_json_loads_reads(document: str) -> None:
    expected = json.loads(document)
    for given in (document, document.encode()):
        found = load_json(given)
        assert found == expected or (found != found and expected != expected)  # NaN
        assert type(found) is type(expected)


@pytest.mark.parametrize("document", ["", "{", "{}x", "[1,]", "nan", "{'a': 1}"])
def test_refuses_what_json_loads_refuses(document: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        load_json(document)


def test_empty_containers_are_new_objects_every_time() -> None:
    first, second = load_json(b"{}"), load_json("{}")
    first["changed"] = 1
    assert second == {}
    assert load_json("[]") is not load_json(b"[]")
