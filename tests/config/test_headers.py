"""What every response carries, and HEAD, on a real daphne server (the test settings)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from django.test import Client, override_settings

from config.embedded_redis import free_port
from tests.config.test_errors import _caches


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize(
    "path", ["/", "/lessons/the-tradeoff/", "/decide/", "/search/?q=sticky", "/playground/"]
)
def test_head_answers_like_get_with_no_body(live_server_url: str, path: str) -> None:
    status, headers, body = fetch(f"{live_server_url}{path}", "HEAD")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body == b""
    assert fetch(f"{live_server_url}{path}")[2]  # GET has one: HEAD left it out


@pytest.mark.parametrize("path", ["/", "/static/css/site.css", "/no-such-page/"])
def test_every_response_has_a_permissions_policy(live_server_url: str, path: str) -> None:
    _, headers, _ = fetch(f"{live_server_url}{path}")
    policy = headers["Permissions-Policy"]
    assert "camera=()" in policy
    assert "geolocation=()" in policy
    assert "microphone=()" in policy


def test_the_redis_outage_page_has_the_permissions_policy_too() -> None:
    # The session middleware fails on the way out, before inner middleware adds headers.
    client = Client(raise_request_exception=False)
    with override_settings(CACHES=_caches(f"redis://127.0.0.1:{free_port()}/0")):
        response = client.get("/lessons/the-tradeoff/")
    assert response.status_code == 503
    assert "camera=()" in response.headers["Permissions-Policy"]
