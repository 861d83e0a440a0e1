"""A lab socket whose Redis went away closes with 4503 and says why, instead of a traceback.

Sockets read the session and use the Channels layer, both on Redis. When Redis is down (at
the handshake or later), the error that comes out of the application ends here: the socket
is accepted if it was not yet (a refused handshake reads as a network error in the browser,
which retries it forever), told in one message, and closed with 4503, a code the browser
does not retry; the page says to reload once Redis is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from django.template.loader import render_to_string

from config.views import REDIS_ERRORS

log = logging.getLogger("config.websocket")

CLOSE_UNAVAILABLE = 4503
MESSAGE = (
    "The site cannot reach Redis right now, so this live view stopped. "
    "Your lab keeps running: reload the page in a moment."
)
# The alert partial of the lab page: the message shows where the page's errors show.
ALERT_TEMPLATE = "playground/lab.html#alert"


class RedisOutageClose:
    """ASGI middleware around the lab sockets (wired in config.asgi)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        sent: set[str] = set()

        async def tracked(message: dict[str, Any]) -> None:
            sent.add(message["type"])
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except REDIS_ERRORS as exc:
            log.warning("WebSocket %s closed with 4503: Redis unreachable (%s)", scope["path"], exc)
            if "websocket.close" in sent:
                return
            html = render_to_string(ALERT_TEMPLATE, {"message": MESSAGE, "oob": True})
            text = json.dumps(
                {"type": "error", "code": CLOSE_UNAVAILABLE, "message": MESSAGE, "html": html}
            )
            # The client may be gone already; there is no one left to tell.
            with contextlib.suppress(Exception):
                if "websocket.accept" not in sent:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": text})
                await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
