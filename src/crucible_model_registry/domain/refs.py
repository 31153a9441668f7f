"""Version references: an id, ``model@version``, ``model@<stage>``, ``model@latest`` or an alias."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crucible_model_registry.domain.rules import (
    MAX_ID,
    MAX_VERSION,
    check_id,
    check_model_name,
    short_repr,
)
from crucible_model_registry.errors import ValidationError

__all__ = ["VersionRef", "parse_ref"]

# Every selector that can name something: version strings, aliases, stage names, "latest".
_SELECTOR = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+\-]{{0,{MAX_VERSION - 1}}}")


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A parsed reference: either ``id`` or ``model_name`` with ``selector`` is set.

    The selector is resolved against the database in this order: ``latest``, a stage
    name, an alias, else a version string.
    """

    id: int | None = None
    model_name: str | None = None
    selector: str | None = None

    def __str__(self) -> str:
        return str(self.id) if self.id is not None else f"{self.model_name}@{self.selector}"


def parse_ref(ref: object, *, field: str = "ref") -> VersionRef:
    """Parse an id (int or digits) or a ``model@selector`` string.

    Raises:
        ValidationError: for anything else, saying which forms are accepted.
    """
    if isinstance(ref, bool):
        raise ValidationError.single(field, "a boolean is not a version reference")
    if isinstance(ref, int):
        if ref < 1:
            raise ValidationError.single(field, f"version ids start at 1, got {ref}")
        return VersionRef(id=check_id(ref, field=field))
    if isinstance(ref, str):
        text = ref.strip()
        if text.isdigit() and text.isascii():
            if len(text) > len(str(MAX_ID)):  # and int() refuses texts of 4,300+ digits
                raise ValidationError.single(
                    field, f"a {len(text)}-digit id is out of range (ids go up to {MAX_ID})"
                )
            return VersionRef(id=check_id(int(text), field=field))
        name, sep, selector = text.rpartition("@")
        if sep and name and selector:
            check_model_name(name, field=field)
            if not _SELECTOR.fullmatch(selector):
                raise ValidationError.single(
                    field,
                    f"{short_repr(selector)} after '@' is not a version string, stage, alias "
                    f"or 'latest' (letters, digits and '._+-', at most {MAX_VERSION} characters)",
                )
            return VersionRef(model_name=name, selector=selector)
    raise ValidationError.single(
        field,
        f"{short_repr(ref)} is not a version reference; use an id (42), 'model@version', "
        "'model@production' (a stage), 'model@latest' or 'model@<alias>'",
    )
