"""The UI over plain HTTP (no browser): what `cmr serve` answers before anyone logs in."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.servers.registry_server import RegistryServer


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_a_browser_is_sent_to_the_login_and_an_api_client_gets_401(
    plain_server: RegistryServer,
) -> None:
    html = {"Accept": "text/html,application/xhtml+xml"}
    status, headers, _ = fetch(plain_server.url + "/models/anything", headers=html)
    assert status == 303
    assert headers["location"] == "/login?next=/models/anything"
    status, _, _ = fetch(plain_server.url + "/api/v1/models", headers=html)
    assert status == 401
    status, _, _ = fetch(plain_server.url + "/models/anything")
    assert status == 401
    status, headers, body = fetch(plain_server.url + "/login?next=//evil.example/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert 'name="token"' in body
    assert 'name="next" value="/"' in body  # an off-site "next" is dropped
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    _, _, body = fetch(plain_server.url + "/login?next=/%5Cevil.example/")
    assert 'name="next" value="/"' in body  # "/\\host" is "//host" to a browser


def test_a_login_with_an_unknown_token_is_refused_and_sets_no_cookie(
    plain_server: RegistryServer,
) -> None:
    status, headers, body = fetch(plain_server.url + "/login", data=b"token=anything&next=/")
    assert status == 401
    assert "set-cookie" not in {k.lower() for k in headers}
    assert 'role="alert"' in body


def test_static_files_are_served_from_the_package(plain_server: RegistryServer) -> None:
    status, _, body = fetch(plain_server.url + "/static/htmx.min.js")
    assert status == 200
    assert "htmx" in body[:2000]
    status, _, body = fetch(plain_server.url + "/static/style.css")
    assert status == 200
    assert "prefers-color-scheme: dark" in body


def test_a_login_posted_from_another_site_is_refused(plain_server: RegistryServer) -> None:
    status, headers, body = fetch(
        plain_server.url + "/login",
        data=b"token=anything&next=/",
        headers={"Origin": "https://evil.example"},
    )
    assert status == 403
    assert "set-cookie" not in {k.lower() for k in headers}
    assert "own login page" in body
