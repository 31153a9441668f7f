"""Empty a test registry database between tests: every row gone, ids counting from 1 again."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from crucible_model_registry.store.tables import metadata


def empty_registry_tables(url: str) -> None:
    """Delete every row of the registry's tables and restart their id counters."""
    # DELETE, not TRUNCATE: on these small tables TRUNCATE's new files cost ~0.3 s a test.
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        if engine.dialect.name == "sqlite":
            conn.execute(text("DELETE FROM sqlite_sequence"))
        else:
            sequences = conn.execute(
                text(
                    "SELECT sequence_name FROM information_schema.sequences "
                    "WHERE sequence_name LIKE 'cmr\\_%'"
                )
            ).scalars()
            for sequence in list(sequences):
                conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    engine.dispose()
