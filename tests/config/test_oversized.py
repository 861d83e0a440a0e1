"""Oversized requests on daphne: what docs/deploy.md says it does with them (drops them
unanswered, which is why the proxy in front must answer), and that the site stays up."""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request

import pytest


def answer_to(url: str, request: bytes) -> bytes:
    """The first bytes daphne answers with; b"" if it closed the connection without one."""
    address = urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        try:
            sock.sendall(request)
            return sock.recv(64)
        except ConnectionResetError:  # it closed while we were still sending
            return b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 65_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n",
    ],
    ids=["65 KB URL", "200 KB header"],
)
def test_daphne_drops_an_oversized_request_unanswered_and_serves_on(
    live_server_url: str, request_bytes: bytes
) -> None:
    # No 414 or 431 from daphne: if this starts to fail, daphne answers them now, and
    # docs/deploy.md and the README's security section should say so.
    assert answer_to(live_server_url, request_bytes) == b""
    with urllib.request.urlopen(f"{live_server_url}/decide/", timeout=10) as response:
        assert response.status == 200


def test_daphne_answers_400_to_headers_over_16_kb_in_all(live_server_url: str) -> None:
    headers = b"".join(b"X-Part-%d: " % i + b"c" * 1000 + b"\r\n" for i in range(20))
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
    assert answer_to(live_server_url, request).startswith(b"HTTP/1.1 400 ")
