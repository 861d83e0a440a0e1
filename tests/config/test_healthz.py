"""The proxy's health check answers without Redis: a Redis outage must not empty the proxy."""

from __future__ import annotations

from django.test import Client, override_settings

from config.embedded_redis import free_port

from .test_errors import _caches


def test_healthz_answers_with_redis_unreachable() -> None:
    client = Client(raise_request_exception=False)
    with override_settings(CACHES=_caches(f"redis://127.0.0.1:{free_port()}/0")):
        response = client.get("/healthz")
        lesson = client.get("/lessons/the-tradeoff/")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert "Set-Cookie" not in response
    assert lesson.status_code == 503  # the same outage, on a page that needs a session
