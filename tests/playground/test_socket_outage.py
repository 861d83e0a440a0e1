"""A lab socket when Redis is down: closed with 4503 and a message, never a traceback."""

from __future__ import annotations

import json
import uuid

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore
from django.test import override_settings

from config.asgi import application
from config.embedded_redis import free_port
from playground.labclient import alab_create
from playground.socket_outage import CLOSE_UNAVAILABLE
from tests.config.test_errors import _caches
from tests.playground.conftest import HOST, ORIGIN, OwnRedis, RunningHost


async def test_a_lab_socket_opened_while_redis_is_down_is_told_and_closed_with_4503() -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    # A returning learner: their session has to be read from Redis to know whose lab it is.
    cookie = f"{settings.SESSION_COOKIE_NAME}={'a' * 32}".encode()
    headers = [ORIGIN, HOST, (b"cookie", cookie)]
    with override_settings(CACHES=_caches(down)):
        socket = WebsocketCommunicator(application, "/ws/labs/abcdefgh/", headers=headers)
        try:
            connected, _ = await socket.connect(timeout=10)
            assert connected  # accepted, so that the browser is told why and does not retry
            message = json.loads(await socket.receive_from(timeout=10))
            closed = await socket.receive_output(timeout=10)
        finally:
            await socket.disconnect()
    assert message["type"] == "error"
    assert message["code"] == CLOSE_UNAVAILABLE == 4503
    assert "cannot reach Redis" in message["message"]
    assert 'id="lab-alert"' in message["html"]
    assert closed == {"type": "websocket.close", "code": 4503}


async def test_a_watched_lab_socket_is_closed_with_4503_when_redis_goes_away(
    host_on_own_redis: tuple[RunningHost, OwnRedis],
) -> None:
    """A real lab host and a real lab socket, both on a Redis of the test's own, killed
    while the socket streams snapshots."""
    running, own = host_on_own_redis
    channel_layers = {"default": {**settings.CHANNEL_LAYERS["default"]}}
    channel_layers["default"]["CONFIG"] = {
        **channel_layers["default"]["CONFIG"],
        "hosts": [own.url],
    }
    with override_settings(
        CACHES=_caches(own.url),
        CHANNEL_LAYERS=channel_layers,
        REDIS_URL=own.url,
        PLAYGROUND_FLEET=running.host.fleet,
    ):
        session = SessionStore()
        session["lab_owner"] = "the-owner"
        await session.asave()
        lab_id = uuid.uuid4().hex[:10]
        await alab_create(lab_id=lab_id, owner="the-owner", config={"workers": 1, "users": 1})
        cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()
        headers = [ORIGIN, HOST, (b"cookie", cookie)]
        socket = WebsocketCommunicator(application, f"/ws/labs/{lab_id}/", headers=headers)
        try:
            assert (await socket.connect(timeout=10))[0]
            assert json.loads(await socket.receive_from(timeout=30))["type"] == "snapshot"
            own.kill()
            while True:
                message = json.loads(await socket.receive_from(timeout=30))
                if message["type"] != "snapshot":
                    break
            closed = await socket.receive_output(timeout=30)
        finally:
            await socket.disconnect()
    # Told why, then closed with the code the browser does not retry; no traceback from
    # the socket's Channels layer, which is what failed first.
    assert message["type"] == "error"
    assert message["code"] == 4503
    assert "cannot reach Redis" in message["message"]
    assert closed == {"type": "websocket.close", "code": 4503}
