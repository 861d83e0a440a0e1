"""The WebSocket origin check: Django's CSRF rule for POSTs, applied to the socket handshake.

Channels' AllowedHostsOriginValidator compares only the origin's host with ALLOWED_HOSTS, not
its scheme or port, so a page on http://127.0.0.1:1 could drive a learner's lab with their
Lax session cookie. Here the origin must be the site's own scheme://host:port as the
request reached it (Django's get_host() and scheme, so ALLOWED_HOSTS, USE_X_FORWARDED_HOST
and SECURE_PROXY_SSL_HEADER count as they do for pages), or one of CSRF_TRUSTED_ORIGINS.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain


class Handshake(HttpRequest):
    """Just enough of a request, built from a WebSocket scope, for get_host() and scheme."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self.websocket_scheme = scope.get("scheme", "ws")
        server = scope.get("server") or ("unknown", "0")
        self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1])
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            text = value.decode("latin1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text

    def _get_scheme(self) -> str:
        # HttpRequest's hook for the scheme before SECURE_PROXY_SSL_HEADER is considered.
        return "https" if self.websocket_scheme == "wss" else "http"


def origin_allowed(scope: dict[str, Any]) -> bool:
    request = Handshake(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return False  # browsers always send one with a WebSocket handshake
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return False
    trusted = list(settings.CSRF_TRUSTED_ORIGINS)
    if origin == own or origin in trusted:
        return True
    # CSRF_TRUSTED_ORIGINS may name subdomains ("https://*.example.com"), as for CSRF.
    parsed = urlsplit(origin)
    return any(
        urlsplit(pattern).scheme == parsed.scheme
        and is_same_domain(parsed.netloc, urlsplit(pattern).netloc.lstrip("*"))
        for pattern in trusted
        if "*" in pattern
    )


class SameOriginValidator:
    """ASGI middleware: refuses (403) a WebSocket handshake from any other origin."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
