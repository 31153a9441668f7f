"""The registry app with authentication on and a stand-in token check, for the UI's login tests.

Run as ``python -m tests.servers.ui_server --port N --workers 1`` with the ``CMR_*``
variables of ``cmr serve`` and ``CMR_UI_TEST_TOKENS`` (JSON: token -> [name, role]). The
server's token authentication (issue 16) is not on this branch, so the UI's one seam,
``session.principal_of_token``, asks ``app.state.ui_token_resolver``, set here from that
map. Everything else is the real app in a real uvicorn process.
"""

from __future__ import annotations

import argparse
import json
import os

import uvicorn

from crucible_model_registry.server import create_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    tokens = {k: tuple(v) for k, v in json.loads(os.environ["CMR_UI_TEST_TOKENS"]).items()}
    app = create_app(auth=True)
    app.state.ui_token_resolver = tokens.get
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
