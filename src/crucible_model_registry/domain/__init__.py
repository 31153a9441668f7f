"""Plain values and rules of the registry: no SQLAlchemy, no I/O."""
