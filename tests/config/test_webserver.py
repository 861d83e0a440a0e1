"""config.webserver: daphne whose shutdown lets every open socket say its last word. Real
servers, a real lab host, a real WebSocket client."""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.parse
from collections.abc import Callable

import pytest

from bench.common import Browser, csrf_token
from playground.consumers import RESTARTING
from tests.conftest import start_daphne, stop_process
from tests.playground.conftest import start_runlabs, stop_runlabs_checked
from tests.websocket_client import WebSocketClient


def lab_socket_url(site: str) -> tuple[str, str]:
    """Start a lab through the playground's form: its socket's URL and the session cookie."""
    learner = Browser(site)
    token = csrf_token(learner.request("/playground/").text)
    assert token is not None
    form = {"csrfmiddlewaretoken": token, "mode": "stateful", "workers": "1", "users": "2"}
    started = learner.request("/playground/labs/", {**form, "rate": "5", "sticky": "on"})
    lab = re.search(r"/playground/labs/([a-z0-9]+)/$", started.url)
    assert started.status == 200 and lab, (started.status, started.url)
    return f"{site.replace('http', 'ws', 1)}/ws/labs/{lab[1]}/", learner.cookie_header()


def last_words(url: str, site: str, cookie: str, stop: Callable[[], None]) -> list[str]:
    """Open a lab socket, run `stop()`, and return what came before the connection ended
    (snapshots aside), then how it ended."""
    ws = WebSocketClient(url, origin=site, cookie=cookie)
    heard: list[str] = []
    try:
        assert ws.recv() is not None  # the first snapshot: the socket is attached
        stop()
        while (text := ws.recv(timeout=15)) is not None:
            message = json.loads(text)
            if message["type"] != "snapshot":
                heard.append(f"{message['type']}: {message['message']}")
        assert ws.ended is not None
        heard.append(f"close {ws.ended.code}")
    finally:
        ws.close()
    return heard


@pytest.mark.parametrize(
    ("module", "said"),
    [("config.webserver", [f"error: {RESTARTING}", "close 1006"]), ("daphne", ["close 1006"])],
)
def test_on_sigint_open_sockets_hear_why_before_the_drop(
    server_env: dict[str, str],
    redis_url: str,
    module: str,
    said: list[str],
) -> None:
    # A lab host of this test's own. Importing the playground's session fixture here would
    # define a second one, alive all session, and the browser tests' labs would land on it.
    host = start_runlabs(server_env, redis_url)
    process, site = start_daphne(server_env, module=module)
    try:
        url, cookie = lab_socket_url(site)
        address = urllib.parse.urlsplit(site)
        # A browser keeps idle connections open (a preconnect, a keep-alive one): daphne
        # 4.2.3's shutdown stumbles on such a connection and cancels no application. If the
        # daphne case starts to fail, daphne has mended it: retire config/webserver.py.
        with socket.create_connection((address.hostname, address.port), timeout=5):
            heard = last_words(url, site, cookie, lambda: process.send_signal(signal.SIGINT))
        assert heard == said
        assert process.wait(timeout=15) == 0
    finally:
        stop_process(process)
        stop_runlabs_checked(host)
