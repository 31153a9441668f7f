"""RegistryAPI lists exactly Registry's public methods, with the same parameters.

mypy checks the types (``registry_api._registry_satisfies_the_protocol``); this checks
that the protocol misses none of Registry's methods, so a remote registry typed by it
cannot lack one either.
"""

from __future__ import annotations

import inspect
import typing

import pytest

from crucible_model_registry import Registry, RegistryAPI

# Ways to build a SQL registry, and its engine: not part of what every registry offers.
SQL_ONLY = {"engine", "from_url", "from_settings"}


def public_names(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_the_protocol_lists_every_public_method_of_registry() -> None:
    assert public_names(Registry) - SQL_ONLY == public_names(RegistryAPI)


@pytest.mark.parametrize("name", sorted(public_names(RegistryAPI) - {"backend"}))
def test_parameters_match(name: str) -> None:
    def shape(fn: object) -> list[tuple[str, object, bool]]:
        return [
            (p.name, p.kind, p.default is inspect.Parameter.empty)
            for p in inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
        ]

    def shapes(fn: object) -> list[list[tuple[str, object, bool]]]:
        # An overloaded method is compared overload by overload.
        return [shape(f) for f in typing.get_overloads(fn)] or [shape(fn)]  # type: ignore[arg-type]

    assert shapes(getattr(RegistryAPI, name)) == shapes(getattr(Registry, name))


@pytest.mark.parametrize(
    "name",
    ["upload_artifact", "download_artifact", "artifact_url", "verify_artifact", "delete_artifact"],
)
def test_the_remote_registry_overrides_keep_the_parameters(name: str) -> None:
    from crucible_model_registry.registry import RemoteRegistry

    def shape(fn: object) -> list[tuple[str, object, object]]:
        return [
            (p.name, p.kind, p.default)
            for p in inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
        ]

    assert getattr(RemoteRegistry, name) is not getattr(Registry, name)
    assert shape(getattr(RemoteRegistry, name)) == shape(getattr(Registry, name))
