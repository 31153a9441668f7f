"""Backend lookup by name, option checking, plugins, lazy imports, NoopStorage and remote paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.storage.contract import sha256_of, write_file

import crucible_model_registry.storage as storage_pkg
from crucible_model_registry.errors import ConfigurationError, StorageError, ValidationError
from crucible_model_registry.storage import backends
from crucible_model_registry.storage.backends import available_backends, create_backend
from crucible_model_registry.storage.base import StorageBackend, artifact_remote_path
from crucible_model_registry.storage.local import LocalStorage
from crucible_model_registry.storage.noop import NoopStorage

PLUGIN_MODULE = """
from crucible_model_registry.storage.local import LocalStorage


class DiskPlugin(LocalStorage):
    name = "{name}"

    def __init__(self, base_path: str, *, copies: int = 1) -> None:
        super().__init__(base_path)
        self.copies = copies


def broken(base_path: str):
    return object()
"""


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget entry points read by earlier tests, so the next lookup reads them again."""
    monkeypatch.setattr(backends, "_plugins", None)


def install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_points: dict[str, str]
) -> None:
    """A real distribution on sys.path: a module and a dist-info with entry points."""
    site = tmp_path / "site"
    module = f"cmr_plugin_{abs(hash(tmp_path)) % 10**8}"
    (site / f"{module}.py").parent.mkdir(parents=True)
    (site / f"{module}.py").write_text(PLUGIN_MODULE.format(name="disk"))
    dist = site / "cmr_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cmr-test-plugin\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {module}:{attr}" for name, attr in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[crucible_model_registry.storage]\n{lines}\n")
    monkeypatch.syspath_prepend(str(site))


# -- built-ins ------------------------------------------------------------------------------


def test_builtins_are_created_by_name(tmp_path: Path) -> None:
    local = create_backend("local", {"base_path": str(tmp_path)})
    assert isinstance(local, LocalStorage)
    assert local.name == "local"
    assert local.base_path == tmp_path.resolve()
    assert isinstance(create_backend("noop", {}), NoopStorage)
    s3 = create_backend(
        "s3", {"bucket": "my-bucket", "region": "us-east-1", "max_concurrency": "2"}
    )
    assert isinstance(s3, StorageBackend)
    assert s3.name == "s3"


def test_unknown_name_is_a_configuration_error_naming_the_choices(fresh_plugins: None) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_backend("gcs", {})
    for choice in ("local", "s3", "huggingface", "noop"):
        assert choice in str(info.value)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("local", {}),
        ("local", {"base_path": "/x", "bucket": "b"}),
        ("s3", {"prefix": "p"}),
        ("s3", {"bucket": "b", "max_concurrency": "many"}),
        ("s3", {"bucket": "b", "multipart_chunksize": 1024}),
        ("s3", {"bucket": "b", "addressing_style": "sideways"}),
    ],
)
def test_invalid_options_fail_before_any_io(name: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        create_backend(name, options)


def test_option_errors_never_echo_values() -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    with pytest.raises(ConfigurationError) as info:
        create_backend("s3", {"bucket": "b", "secret_access_key": [secret], "unknown": secret})
    assert secret not in str(info.value)
    assert "secret_access_key" in str(info.value)


def test_a_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import boto3` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.delitem(sys.modules, "crucible_model_registry.storage.s3", raising=False)
    with pytest.raises(ConfigurationError) as info:
        create_backend("s3", {"bucket": "b"})
    assert "pip install 'crucible-model-registry[s3]'" in str(info.value)


def test_importing_the_storage_package_loads_no_sdk() -> None:
    code = (
        "import sys, crucible_model_registry.storage as s\n"
        "from crucible_model_registry.storage import backends, manifest, LocalStorage\n"
        "assert not {'boto3', 'botocore', 'huggingface_hub'} & set(sys.modules)\n"
        "assert s.S3Storage.__name__ == 'S3Storage' and 'boto3' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_exports_resolve() -> None:
    assert storage_pkg.LocalStorage is LocalStorage
    assert storage_pkg.NoopStorage is NoopStorage
    assert storage_pkg.StorageBackend is StorageBackend
    assert storage_pkg.__all__ == sorted(storage_pkg.__all__)
    with pytest.raises(AttributeError):
        _ = storage_pkg.NoSuchThing


# -- plugins --------------------------------------------------------------------------------


def test_a_plugin_is_found_by_its_entry_point_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(tmp_path, monkeypatch, {"disk": "DiskPlugin"})
    assert "disk" in available_backends()
    backend = create_backend("disk", {"base_path": str(tmp_path / "root"), "copies": "2"})
    assert backend.name == "disk"
    assert vars(backend)["copies"] == 2
    src = write_file(tmp_path / "a.bin", 10)
    assert backend.upload(src, "m/1/other/a.bin").sha256 == sha256_of(src)


def test_a_plugin_options_are_checked_against_its_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(tmp_path, monkeypatch, {"disk": "DiskPlugin"})
    with pytest.raises(ConfigurationError):
        create_backend("disk", {"base_path": str(tmp_path), "copies": "lots"})
    with pytest.raises(ConfigurationError):
        create_backend("disk", {"base_path": str(tmp_path), "colour": "red"})


def test_a_plugin_that_builds_no_backend_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(tmp_path, monkeypatch, {"broken": "broken"})
    with pytest.raises(ConfigurationError):
        create_backend("broken", {"base_path": str(tmp_path)})


def test_a_plugin_that_fails_to_import_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(tmp_path, monkeypatch, {"ghost": "NoSuchClass"})
    with pytest.raises(ConfigurationError):
        create_backend("ghost", {})


def test_a_plugin_claiming_a_builtin_name_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    install_plugin(tmp_path, monkeypatch, {"s3": "DiskPlugin", "disk": "DiskPlugin"})
    with pytest.warns(RuntimeWarning, match="'s3'"):
        names = available_backends()
    assert "disk" in names
    backend = create_backend("s3", {"bucket": "my-bucket"})
    assert type(backend).__name__ == "S3Storage"


def test_entry_points_are_not_read_for_builtin_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    create_backend("local", {"base_path": str(tmp_path)})
    assert backends._plugins is None


# -- NoopStorage ----------------------------------------------------------------------------


def test_noop_reports_size_and_checksum_and_stores_nothing(tmp_path: Path) -> None:
    noop = NoopStorage()
    src = write_file(tmp_path / "a.bin", 3000)
    result = noop.upload(src, "m/1/other/a.bin")
    assert (result.storage_path, result.size_bytes, result.sha256) == (
        "m/1/other/a.bin",
        3000,
        sha256_of(src),
    )
    assert not noop.exists(result.storage_path)
    noop.delete(result.storage_path)
    with pytest.raises(StorageError) as info:
        noop.download(result.storage_path, tmp_path / "out.bin")
    assert info.value.backend == "noop"
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(StorageError):
        noop.url(result.storage_path)
    with pytest.raises(ValidationError):
        noop.upload(src, "../a.bin")


# -- remote paths ---------------------------------------------------------------------------


def test_artifact_remote_path_follows_the_layout() -> None:
    assert artifact_remote_path("org/llama", "1.0.0", "checkpoint", "model.bin") == (
        "org/llama/1.0.0/checkpoint/model.bin"
    )


@pytest.mark.parametrize(
    ("model", "version", "kind", "name", "field"),
    [
        ("../m", "1", "checkpoint", "a.bin", "model_name"),
        ("/m", "1", "checkpoint", "a.bin", "model_name"),
        ("m", "1/2", "checkpoint", "a.bin", "version"),
        ("m", "..", "checkpoint", "a.bin", "version"),
        ("m", "1", "checkpoint", "d/a.bin", "name"),
        ("m", "1", "checkpoint", "", "name"),
        ("m", "1", "check\\point", "a.bin", "type"),
    ],
)
def test_artifact_remote_path_refuses_escapes(
    model: str, version: str, kind: str, name: str, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        artifact_remote_path(model, version, kind, name)
    assert field in info.value.errors
