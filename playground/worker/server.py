"""A worker's HTTP/1.1 server: keep-alive, pipelining, size limits, draining on SIGTERM.

Frames requests and answers for the shop (shop.py), which does the rest. Standard library
only.
"""

from __future__ import annotations

import asyncio
import json
import sys
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from .shop import HttpError, Shop

if TYPE_CHECKING:
    from .chat import Chat

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_GRACE = 0.1  # after SIGTERM, idle keep-alive connections are closed after this


class Member(Protocol):
    """An open connection of this worker: HTTP, or a WebSocket it was upgraded to."""

    @property
    def idle(self) -> bool: ...

    def close(self) -> None: ...


class Server:
    """Every connection of this worker, and their draining on SIGTERM. A chat worker
    (`chat`) hands `Upgrade: websocket` requests for /chat/<room> over to its rooms."""

    def __init__(self, shop: Shop, chat: Chat | None = None) -> None:
        self.shop = shop
        self.chat = chat
        if chat is not None:
            chat.server = self
        self.draining = False
        self.connections: set[Member] = set()
        self.done = asyncio.Event()

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    def gone(self, connection: Member) -> None:
        self.connections.discard(connection)
        if self.draining and not self.connections:
            self.done.set()

    def drain(self) -> None:
        """SIGTERM: accept nothing new, let busy connections finish their request, close
        idle ones after a short grace (a request may already be on its way in one: the
        signal can be handled before its bytes are read), then exit."""
        self.draining = True
        asyncio.get_running_loop().call_later(IDLE_GRACE, self.close_idle)
        if not self.connections:
            self.done.set()

    def close_idle(self) -> None:
        for connection in list(self.connections):
            if connection.idle:
                connection.close()


class HttpConnection(asyncio.Protocol):
    """One client connection: requests are parsed as their bytes arrive and answered one at
    a time, in order.

    A protocol rather than asyncio streams, because on the course machine a wakeup costs
    far more than the shop's own work: here a request's bytes are parsed in the callback
    that received them (no reader task to wake), a health check is answered right there,
    and only a shop request gets a task, for its work and its session store.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.shop = server.shop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        # A request whose head is parsed and whose body is still on its way:
        # (method, target, headers, keep_alive, body length).
        self.pending: tuple[str, str, dict[str, str], bool, int] | None = None
        self.task: asyncio.Task[None] | None = None
        self.paused = False
        self.closed = False

    @property
    def idle(self) -> bool:
        """Between requests (a partial head counts: its sender may never finish it)."""
        return self.task is None and self.pending is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        if self.server.draining:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.gone(self)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def hand_over(self, member: Member) -> None:
        """The connection is a WebSocket now: `member` owns its transport and callbacks."""
        assert self.transport is not None
        self.transport.set_protocol(member)  # type: ignore[arg-type]
        self.closed = True
        self.task = None
        self.server.connections.discard(self)
        self.server.connections.add(member)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.task is None:
            self.next_request()
        elif len(self.buffer) > MAX_HEAD + MAX_BODY and self.transport is not None:
            self.transport.pause_reading()  # a client that sends without reading answers
            self.paused = True

    def next_request(self) -> None:
        """Answer the requests in the buffer, in order, until one must wait (for the rest
        of its bytes, or for its answer)."""
        while not self.closed and self.task is None:
            if self.pending is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0 and len(self.buffer) <= MAX_HEAD:
                    break
                if end < 0 or end + 4 > MAX_HEAD:
                    self.close()  # a head over the limit: dropped, as a proxy would
                    return
                head = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                self.pending = self.parse(head)
                if self.pending is None:
                    return
            method, target, headers, keep_alive, length = self.pending
            if len(self.buffer) < length:
                break
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
            self.pending = None
            path = target.split("?", 1)[0]
            if path == "/health":
                # Answered at once: the balancer asks five times a second.
                try:
                    answer = self.shop.health_answer(method)
                except HttpError as exc:
                    answer = exc.status, {"error": exc.message}, []
                self.respond(*answer, keep_alive)
            elif (
                self.server.chat is not None
                and path.startswith("/chat/")
                and headers.get("upgrade", "").lower() == "websocket"
            ):
                # What follows the upgrade is the WebSocket's: it waits in the buffer.
                self.task = asyncio.get_running_loop().create_task(
                    self.upgrade(self.server.chat, target, headers)
                )
            else:
                self.task = asyncio.get_running_loop().create_task(
                    self.serve(method, target, path, headers, body, keep_alive)
                )
        if self.paused and self.task is None and self.transport is not None:
            self.transport.resume_reading()  # waiting for bytes again
            self.paused = False

    def parse(self, head: bytes) -> tuple[str, str, dict[str, str], bool, int] | None:
        """(method, target, headers, keep_alive, body length), or None after answering
        a request that cannot be served (the connection is then closed)."""
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self.respond(400, {"error": "bad request line"}, [], False)
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.respond(413, {"error": "bad body length"}, [], False)
            return None
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return method, target, headers, keep_alive, length

    async def serve(
        self,
        method: str,
        target: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        try:
            status, data, extra = await self.shop.handle(method, path, headers, body)
        except HttpError as exc:
            status, data, extra = exc.status, {"error": exc.message}, []
        except Exception as exc:  # a bug must cost one request, not the connection
            print(f"worker {self.shop.name}: {method} {target}: {exc!r}", file=sys.stderr)
            status, data, extra = 500, {"error": "internal error"}, []
        self.task = None
        self.respond(status, data, extra, keep_alive)
        self.next_request()  # a request that arrived meanwhile (pipelined)

    async def upgrade(self, chat: Chat, target: str, headers: dict[str, str]) -> None:
        try:
            await chat.accept(self, target, headers)
        except HttpError as exc:
            self.task = None
            self.respond(exc.status, {"error": exc.message}, [], False)
        except Exception as exc:  # a bug must cost one connection, not the worker
            print(f"worker {self.shop.name}: upgrade {target}: {exc!r}", file=sys.stderr)
            self.task = None
            self.respond(500, {"error": "internal error"}, [], False)

    def respond(
        self, status: int, data: dict[str, Any], extra: list[str], keep_alive: bool
    ) -> None:
        if self.closed or self.transport is None:
            return  # the client went away first
        keep_alive = keep_alive and not self.server.draining
        write_response(self.transport, self.shop.name, status, data, extra, keep_alive)
        if not keep_alive:
            self.close()  # after the answer: a transport sends what it holds, then closes


def write_response(
    writer: asyncio.WriteTransport,
    worker: str,
    status: int,
    data: dict[str, Any],
    extra: list[str],
    keep_alive: bool,
) -> None:
    body = json.dumps(data).encode()
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"X-Worker: {worker}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *extra,
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
