"""The public surface: a sorted explicit ``__all__``, API.md's names, a cheap import, the schema."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

import crucible_model_registry as cmr
from crucible_model_registry import Registry
from crucible_model_registry.store import schema
from crucible_model_registry.store.tables import PREFIX, VERSION_TABLE, metadata

# API.md §2 (domain types), §3 (operations, aliases and promotion policy) and §9 (errors).
DOMAIN_TYPES = [
    "Stage",
    "Relationship",
    "ArtifactType",
    "Model",
    "ModelVersion",
    "Artifact",
    "LineageEdge",
    "StageTransition",
    "AliasChange",
    "PromotionPolicy",
]
OPERATIONS = [
    "register",
    "promote",
    "get_model",
    "get_version",
    "find_by_config_hash",
    "list_models",
    "stage_history",
    "update_metrics",
    "add_tags",
    "remove_tags",
    "delete_version",
    "set_alias",
    "delete_alias",
    "alias_history",
    "set_promotion_policy",
    "get_promotion_policy",
    "hash_config",
]
ERRORS = [
    "RegistryError",
    "ValidationError",
    "NotFoundError",
    "DuplicateVersionError",
    "DuplicateConfigError",
    "DuplicateModelError",
    "LineageCycleError",
    "StorageError",
    "ChecksumMismatchError",
    "PromotionDeniedError",
    "SchemaNotReadyError",
    "ConfigurationError",
]
SETUP = ["Registry", "configure", "get_registry", "storage", "telemetry", "stages"]

HEAVY_MODULES = [
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "alembic",
    "boto3",
    "botocore",
    "huggingface_hub",
    "typer",
    "rich",
    "opentelemetry",
    "numpy",
    "fastapi",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "httpx",
    "httpx2",
    "anyio",
]


def test_all_is_sorted_and_unique() -> None:
    assert cmr.__all__ == sorted(set(cmr.__all__))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in cmr.__all__ if not hasattr(cmr, name)]
    assert missing == []


@pytest.mark.parametrize("name", DOMAIN_TYPES + OPERATIONS + ERRORS + SETUP)
def test_api_names_are_exported(name: str) -> None:
    assert name in cmr.__all__
    assert getattr(cmr, name) is not None


@pytest.mark.parametrize("name", ERRORS)
def test_errors_subclass_registry_error(name: str) -> None:
    assert issubclass(getattr(cmr, name), cmr.RegistryError)


def test_checksum_mismatch_is_a_storage_error() -> None:
    assert issubclass(cmr.ChecksumMismatchError, cmr.StorageError)


@pytest.mark.parametrize("name", [op for op in OPERATIONS if op != "hash_config"])
def test_module_functions_mirror_registry_methods(name: str) -> None:
    method = getattr(Registry, name)
    function = getattr(cmr, name)
    params = list(inspect.signature(method).parameters.values())[1:]
    assert list(inspect.signature(function).parameters.values()) == params
    assert function.__doc__ == method.__doc__


def _imported_after(code: str) -> list[str]:
    script = f"import sys; {code}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    modules: list[str] = json.loads(out)
    return modules


def test_importing_the_package_imports_nothing_heavy() -> None:
    loaded = _imported_after("import crucible_model_registry")
    heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY_MODULES))
    assert heavy == []


def test_the_remote_registry_loads_its_http_client_on_first_request() -> None:
    code = (
        "import crucible_model_registry as cmr; "
        "r = cmr.Registry.from_url('http://127.0.0.1:9'); r.close()"
    )
    loaded = _imported_after(code)
    assert "crucible_model_registry.backends.http" in loaded
    assert sorted({m.split(".")[0] for m in loaded} & {"httpx2", "fastapi", "uvicorn"}) == []


def test_import_of_the_package_does_not_read_settings_or_open_a_database() -> None:
    loaded = _imported_after("import crucible_model_registry")
    assert "crucible_model_registry.settings" not in loaded
    assert not any(m.startswith("crucible_model_registry.store.") for m in loaded)


def test_importing_the_package_loads_only_the_errors() -> None:
    loaded = {m for m in _imported_after("import crucible_model_registry") if "crucible" in m}
    assert loaded == {
        "crucible_model_registry",
        "crucible_model_registry._hooks",
        "crucible_model_registry.errors",
    }


def test_first_use_of_a_name_loads_the_whole_surface() -> None:
    loaded = _imported_after("import crucible_model_registry as cmr; cmr.Stage")
    assert {"crucible_model_registry._api", "crucible_model_registry.registry"} <= set(loaded)


def test_star_import_and_dir_offer_every_public_name() -> None:
    script = (
        "import json, crucible_model_registry as cmr; ns = {}; "
        "exec('from crucible_model_registry import *', ns); "
        "names = set(cmr.__all__); "
        "print(json.dumps([sorted(names - set(ns)), sorted(names - set(dir(cmr)))]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == [[], []]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'regster'"):
        cmr.regster  # noqa: B018


def test_a_query_imported_from_its_module_runs_on_the_default_registry(tmp_path: Path) -> None:
    # Without the package's surface loaded, Query must still find the default registry.
    script = (
        "from crucible_model_registry.query import Query; "
        "print(len(Query().where_recipe('sft').execute()))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env["CMR_HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env
    ).stdout
    assert out.strip() == "0"
    assert (tmp_path / "registry.db").exists()


# --------------------------------------------------------------------------- the schema


def _script_directory() -> ScriptDirectory:
    migrations = Path(schema.__file__).with_name("migrations")
    return ScriptDirectory(str(migrations))


def test_head_revision_is_alembics_head() -> None:
    heads = _script_directory().get_heads()
    assert heads == [schema.HEAD_REVISION]


def test_known_revisions_are_alembics_in_order() -> None:
    walked = [r.revision for r in _script_directory().walk_revisions()]
    assert tuple(reversed(walked)) == schema.KNOWN_REVISIONS


def test_every_table_carries_the_prefix() -> None:
    assert all(name.startswith(PREFIX) for name in metadata.tables)
    assert VERSION_TABLE.startswith(PREFIX)


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    if type_ == "table":
        return bool(name) and str(name).startswith(PREFIX) and name != VERSION_TABLE
    return True


def test_migrations_match_the_table_metadata(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": _ours,
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
