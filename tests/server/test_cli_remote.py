"""The real ``cmr`` executable against a server: ``--server``, ``CMR_SERVER_URL``, ``cmr serve``."""

from __future__ import annotations

from tests.cli.runner import assert_user_error, run_cmr
from tests.servers.registry_server import RegistryServer


def test_register_query_and_show_through_the_server(server: RegistryServer) -> None:
    made = run_cmr(
        "--server", server.url, "--token", server.token, "--json", "register", "m",
        "-r", "sft", "-b", "base", "-s", "lr=0.1", "-m", "accuracy=0.9",
    )  # fmt: skip
    assert made.code == 0, made.stderr
    assert made.json()["version"] == "1"
    shown = run_cmr("--server", server.url, "--token", server.token, "--json", "show", "m@1")
    assert shown.code == 0, shown.stderr
    assert shown.json()["metrics"] == {"accuracy": 0.9}
    found = run_cmr(
        "--json",
        "query",
        "--model",
        "m",
        env={"CMR_SERVER_URL": server.url, "CMR_TOKEN": server.token},
    )
    assert found.code == 0, found.stderr
    assert [v["id"] for v in found.json()] == [made.json()["id"]]


def test_a_server_error_is_a_user_error_at_the_cli(server: RegistryServer) -> None:
    result = run_cmr("--server", server.url, "--token", server.token, "show", "nope@1")
    assert_user_error(result)
    assert "nope" in result.stderr


def test_an_unreachable_server_is_a_user_error(server: RegistryServer) -> None:
    result = run_cmr("--server", "http://127.0.0.1:9", "show", "m@1")
    assert_user_error(result)


def test_serve_refuses_no_auth_on_a_public_address() -> None:
    result = run_cmr("serve", "--host", "0.0.0.0", "--port", "9", "--no-auth")
    assert_user_error(result)
    assert "--no-auth" in result.stderr


def test_serve_stops_gracefully_on_sigterm(sqlite_template, tmp_path) -> None:
    import shutil

    from tests.servers.registry_server import start_registry_server

    shutil.copyfile(sqlite_template, tmp_path / "r.db")
    server = start_registry_server(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "w")
    assert server.get("/healthz")[0] == 200
    # uvicorn re-raises SIGTERM once it has shut down cleanly: the exit is the signal's.
    assert server.stop() in (0, -15)
    log = server.log.read_text()
    assert "Application shutdown complete" in log
    assert "Finished server process" in log


def test_upload_and_download_through_the_server(server: RegistryServer, tmp_path) -> None:
    env = {"CMR_SERVER_URL": server.url, "CMR_TOKEN": server.token}
    run_cmr("register", "m", "-r", "sft", "-b", "base", env=env)
    (tmp_path / "model.bin").write_bytes(b"weights" * 1000)
    up = run_cmr("--json", "upload", "m@1", "checkpoint", str(tmp_path / "model.bin"), env=env)
    assert up.code == 0, up.stderr
    down = run_cmr("download", "m@1", str(tmp_path / "out.bin"), env=env)
    assert down.code == 0, down.stderr
    assert (tmp_path / "out.bin").read_bytes() == b"weights" * 1000
    assert [p.name for p in server.storage_dir.rglob("model.bin")] == ["model.bin"]


def test_audit_through_the_server_carries_request_ids(server: RegistryServer) -> None:
    made = run_cmr(
        "--server", server.url, "--token", server.token,
        "register", "audited", "-r", "sft", "-b", "base", "-s", "lr=0.2",
    )  # fmt: skip
    assert made.code == 0, made.stderr
    result = run_cmr(
        "--server", server.url, "--token", server.token, "--json", "audit", "--action", "register"
    )
    assert result.code == 0, result.stderr
    [entry] = [e for e in result.json() if e["target"] == "audited@1"]
    assert entry["request_id"]
