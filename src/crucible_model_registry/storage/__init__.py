"""Artifact bytes: the StorageBackend protocol and the built-in backends, imported lazily.

``import crucible_model_registry.storage`` loads no SDK: ``S3Storage`` pulls in boto3 and
``HuggingFaceStorage`` huggingface_hub only when first touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crucible_model_registry.storage.backends import available_backends, create_backend
    from crucible_model_registry.storage.base import (
        ProgressCallback,
        StorageBackend,
        TransferResult,
        artifact_remote_path,
    )
    from crucible_model_registry.storage.huggingface import HuggingFaceStorage
    from crucible_model_registry.storage.local import LocalStorage
    from crucible_model_registry.storage.noop import NoopStorage
    from crucible_model_registry.storage.s3 import S3Storage

__all__ = [
    "HuggingFaceStorage",
    "LocalStorage",
    "NoopStorage",
    "ProgressCallback",
    "S3Storage",
    "StorageBackend",
    "TransferResult",
    "artifact_remote_path",
    "available_backends",
    "create_backend",
]

_LAZY = {
    "HuggingFaceStorage": "huggingface",
    "LocalStorage": "local",
    "NoopStorage": "noop",
    "ProgressCallback": "base",
    "S3Storage": "s3",
    "StorageBackend": "base",
    "TransferResult": "base",
    "artifact_remote_path": "base",
    "available_backends": "backends",
    "create_backend": "backends",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
