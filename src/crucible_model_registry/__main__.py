"""``python -m crucible_model_registry``: the ``cmr`` command line."""

from crucible_model_registry.cli import main

main()
