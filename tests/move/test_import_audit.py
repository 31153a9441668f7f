"""What an import writes to the audit log: one entry per model it changes, none otherwise.

The source registry's own log is not exported (see the README's "Audit log"): the entries
here are the target registry's record of the import itself.
"""

from __future__ import annotations

from pathlib import Path

import crucible_model_registry as cmr
from crucible_model_registry import Registry


def test_an_import_appends_one_entry_per_model_it_changes(
    seeded: Registry, registry: Registry, tmp_path: Path
):
    seeded.export_to(tmp_path / "a")
    assert registry.import_from(tmp_path / "a", dry_run=True).dry_run
    assert registry.audit_log() == []  # a dry run rolls its entries back with the rest

    with cmr.acting_as("migrator"):
        report = registry.import_from(tmp_path / "a")
    entries = registry.audit_log()
    assert {e.action for e in entries} == {"import"}
    assert {e.actor for e in entries} == {"migrator"}
    models = {e.target: e.details for e in entries if "@" not in e.target}
    assert set(models) == {"base", "sft", "zeta-consumer"}
    assert models["sft"]["versions"] == ["1", "2"]
    assert models["base"]["versions"] == ["1.0"]
    edges = [e for e in entries if "@" in e.target]  # edges applied after every model
    imported = {k: 0 for k in report.imported}
    for details in [*models.values(), *(e.details for e in edges)]:
        for kind, n in details["imported"].items():
            imported[kind] += n
    assert imported == report.imported

    # Importing the same export again changes nothing and logs nothing.
    again = registry.import_from(tmp_path / "a")
    assert not again.changed
    assert registry.audit_log() == entries
