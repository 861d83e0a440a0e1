"""A small asyncio WebSocket client for the benchmarks, on autobahn (which daphne installs).

Each message is stamped with time.perf_counter() the moment autobahn hands it over, so a
benchmark's own parsing never counts in what it measures.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse

import txaio

txaio.use_asyncio()

from autobahn.asyncio.websocket import (  # noqa: E402 - txaio must pick asyncio first
    WebSocketClientFactory,
    WebSocketClientProtocol,
)


class WebSocketClosed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"the socket closed (code {code}: {reason or 'no reason'})")
        self.code = code
        self.reason = reason


class WebSocket:
    """Connect with `await WebSocket.connect(...)`; always `await ws.close()`."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[float, str | None]] = asyncio.Queue()
        self.protocol: WebSocketClientProtocol | None = None
        self.closed: WebSocketClosed | None = None

    @classmethod
    async def connect(
        cls, url: str, *, origin: str, cookie: str = "", within: float = 10.0
    ) -> WebSocket:
        ws = cls()
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()

        class Client(WebSocketClientProtocol):  # type: ignore[misc]
            # autobahn names these callbacks (camelCase, its arguments too).
            def onOpen(self) -> None:
                if not opened.done():
                    opened.set_result(None)

            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                text = payload.decode(errors="replace")
                ws.messages.put_nowait((time.perf_counter(), text))

            def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
                ws.closed = WebSocketClosed(code, reason)
                ws.messages.put_nowait((time.perf_counter(), None))
                if not opened.done():
                    opened.set_exception(ws.closed)

        headers = {"Cookie": cookie} if cookie else {}
        factory = WebSocketClientFactory(url, origin=origin, headers=headers)
        factory.protocol = Client
        parts = urllib.parse.urlsplit(url)
        async with asyncio.timeout(within):
            _, protocol = await loop.create_connection(
                factory, parts.hostname or "127.0.0.1", parts.port or 80
            )
        ws.protocol = protocol
        try:
            async with asyncio.timeout(within):
                await opened
        except BaseException:
            protocol.dropConnection(abort=True)
            raise
        return ws

    async def recv(self, within: float) -> tuple[float, str]:
        """(arrival time, text) of the next message; TimeoutError, or WebSocketClosed."""
        async with asyncio.timeout(within):
            arrived, text = await self.messages.get()
        if text is None:
            assert self.closed is not None
            raise self.closed
        return arrived, text

    def send(self, text: str) -> None:
        assert self.protocol is not None
        self.protocol.sendMessage(text.encode(), isBinary=False)

    async def close(self) -> None:
        if self.protocol is None or self.closed is not None:
            return
        self.protocol.sendClose(code=1000)
        try:
            while True:
                await self.recv(within=3)
        except (WebSocketClosed, TimeoutError):
            pass
        if self.closed is None:
            self.protocol.dropConnection(abort=True)
