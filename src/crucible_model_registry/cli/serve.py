"""``cmr serve``: run the registry server (extra ``server``) under uvicorn."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any

import typer

from crucible_model_registry.cli import _session

__all__ = ["app"]

app = typer.Typer()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(rich_help_panel="Setup")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8470,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Serve without access control: every request has every right and names "
            "its own actor (X-CMR-Actor). Loopback addresses only.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the registry named by the global options and CMR_* settings over HTTP.

    REST under /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs), /healthz,
    /readyz and /metrics. Every request but those probes needs an API token
    (Authorization: Bearer; create the first with `cmr token create admin --role admin
    --database-url ...`). Stops gracefully on SIGINT/SIGTERM.
    """
    if no_auth and not _is_loopback(host):
        raise _session.CommandError(
            f"refusing to serve on {host} without access control: anyone who reaches that "
            "address could change the registry; drop --no-auth (tokens are required then) "
            "or bind 127.0.0.1"
        )
    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client", "jinja2") if not find_spec(m)]
    if missing:
        raise _session.CommandError(
            f"cmr serve needs {', '.join(missing)}: pip install 'crucible-model-registry[server]'"
        )
    import uvicorn

    session = _session.current()
    settings = session.settings()
    if settings.server_url:
        raise _session.CommandError("cmr serve serves a database: unset CMR_SERVER_URL/--server")
    # Worker processes read the settings again: hand them the global options too.
    if session.database_url:
        os.environ["CMR_DATABASE_URL"] = session.database_url
    if session.storage:
        os.environ["CMR_STORAGE_BACKEND"] = session.storage
    os.environ["CMR_SERVE_AUTH"] = "0" if no_auth else "1"
    own_metrics_dir = _prepare_metrics_dir(workers)

    def remove_metrics_dir() -> None:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)

    def on_sigterm(signum: int, frame: object) -> None:
        # uvicorn raises the SIGTERM it caught again after a clean shutdown, which ends the
        # process without running `finally`: remove the directory first, then die of it.
        remove_metrics_dir()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        _run(uvicorn, host=host, port=port, workers=workers, log_level=log_level)
    finally:
        remove_metrics_dir()


def _prepare_metrics_dir(workers: int) -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers; the temporary one made here, if any.

    prometheus-client adds up the workers' counters from files in this directory. A given
    directory is emptied of a previous run's files first (prometheus-client's rule: stale
    files of dead processes would be added in); with several workers and none given, a
    temporary one is made and removed when the server stops.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for stale in Path(given).glob("*.db"):
            if stale.name.split("_", 1)[0] in ("counter", "gauge", "histogram", "summary"):
                stale.unlink(missing_ok=True)
        return None
    if workers == 1:
        return None
    made = tempfile.mkdtemp(prefix="cmr-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def _run(uvicorn: Any, *, host: str, port: int, workers: int, log_level: str) -> None:
    uvicorn.run(
        "crucible_model_registry.server.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=_log_config(),
        access_log=False,  # the app's own access log carries the request id
        timeout_graceful_shutdown=30,
        proxy_headers=False,
    )


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    config["loggers"]["crucible_model_registry"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config
