"""The team server: a REST API under ``/api/v1`` over one ``Registry`` (extra ``server``).

``create_app`` builds the ASGI application; ``cmr serve`` runs it under uvicorn. Importing
this package imports FastAPI, so nothing in the core imports it.
"""

from __future__ import annotations

from crucible_model_registry.server.app import create_app

__all__ = ["create_app"]
