"""Every public error has its own stable code and names the attributes that identify it."""

from __future__ import annotations

import re

import pytest

import crucible_model_registry as cmr
from crucible_model_registry import errors

CLASSES = [getattr(errors, name) for name in errors.__all__]


def test_every_public_error_is_a_registry_error_exported_by_the_package() -> None:
    assert all(issubclass(cls, cmr.RegistryError) for cls in CLASSES)
    assert set(errors.__all__) <= set(cmr.__all__)


def test_codes_are_unique_snake_case_and_set_by_each_class() -> None:
    codes = [cls.code for cls in CLASSES]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in codes)
    assert all("code" in vars(cls) for cls in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_subclass_keeps_its_parents_details(cls: type[cmr.RegistryError]) -> None:
    for parent in cls.__mro__[1:]:
        if isinstance(parent, type) and issubclass(parent, cmr.RegistryError):
            assert set(parent.detail_fields) <= set(cls.detail_fields)


def test_new_errors_sit_where_the_tree_puts_them() -> None:
    assert issubclass(cmr.ConstraintViolationError, cmr.DatabaseError)
    for cls in (cmr.StageFailedError, cmr.AuthenticationError, cmr.PermissionDeniedError):
        assert cls.__bases__ == (cmr.RegistryError,)
    assert cmr.stages.StageFailedError is cmr.StageFailedError
