"""The lab socket's handshake is refused from any origin but the site's own (scheme, host and
port, as Django's CSRF check), through the real ASGI application."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application


async def handshake(origin: str | None, host: str, *, scheme: str = "ws", **extra: str) -> bool:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(name.encode(), value.encode()) for name, value in extra.items()]
    communicator = WebsocketCommunicator(application, "/ws/labs/abcdef1234/", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
        ("http://localhost", "localhost", "ws"),
        ("https://localhost:8443", "localhost:8443", "wss"),
    ],
)
async def test_the_sites_own_origin_is_accepted(origin: str, host: str, scheme: str) -> None:
    assert await handshake(origin, host, scheme=scheme)


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:1", "127.0.0.1:8000", "ws"),  # another port of the same host
        ("http://127.0.0.1", "127.0.0.1:8000", "ws"),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "ws"),  # another scheme
        ("http://localhost:8443", "localhost:8443", "wss"),
        ("http://localhost:8000", "127.0.0.1:8000", "ws"),  # another allowed host
        ("http://evil.example:8000", "evil.example:8000", "ws"),  # not in ALLOWED_HOSTS
        ("null", "127.0.0.1:8000", "ws"),  # a sandboxed frame or a file: page
        (None, "127.0.0.1:8000", "ws"),
    ],
)
async def test_any_other_origin_is_refused(origin: str | None, host: str, scheme: str) -> None:
    assert not await handshake(origin, host, scheme=scheme)


async def test_csrf_trusted_origins_are_accepted_too(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["http://127.0.0.1:9000", "https://*.example.org"]
    assert await handshake("http://127.0.0.1:9000", "127.0.0.1:8000")
    assert await handshake("https://labs.example.org", "127.0.0.1:8000")
    assert not await handshake("http://labs.example.org", "127.0.0.1:8000")


async def test_behind_a_tls_proxy_the_forwarded_scheme_counts(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = {"x-forwarded-proto": "https"}
    assert await handshake("https://localhost", "localhost", **forwarded)
    assert not await handshake("http://localhost", "localhost", **forwarded)


async def test_a_classroom_address_in_allowed_hosts_is_the_sites_own_origin(
    settings: Any,
) -> None:
    # `make run` with HOST=0.0.0.0 allows the LAN addresses (config/settings/dev.py); the
    # origin check follows, for that address only and with its own port.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "192.168.1.23", "[2001:db8:1::23]"]
    assert await handshake("http://192.168.1.23:8000", "192.168.1.23:8000")
    assert await handshake("http://[2001:db8:1::23]:8000", "[2001:db8:1::23]:8000")
    assert not await handshake("http://192.168.1.23:8001", "192.168.1.23:8000")
    assert not await handshake("http://192.168.1.24:8000", "192.168.1.24:8000")
