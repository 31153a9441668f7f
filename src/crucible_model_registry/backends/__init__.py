"""Where metadata lives: the MetadataBackend protocol (``base``) and its implementations.

``sql`` holds models, versions and histories in a SQL database through SQLAlchemy; the
modules load on first use, so importing this package imports neither.
"""
