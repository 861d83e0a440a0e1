"""The client side of a WebSocket (RFC 6455), over asyncio streams: what a virtual chat
user needs and no more (text frames, ping, close; no extensions). No Django imports here,
and no third-party library: the lab engine is standard library only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct

from .wire import BadMessage, read_response

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 1024 * 1024
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


class HandshakeRefused(Exception):
    """The server (or the balancer) answered the upgrade with something other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        self.status = status


class WebSocket:
    """`await WebSocket.connect(...)`, then send_text / receive; always close()."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.close_code: int | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, *, headers: list[tuple[str, str]] | None = None
    ) -> WebSocket:
        """Open the connection and do the handshake (bound it with asyncio.timeout).
        Raises OSError, HandshakeRefused, BadMessage or IncompleteReadError."""
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_FRAME)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: {host}:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{k}: {v}" for k, v in headers or []),
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            response = await read_response(reader)
            if response.status != 101:
                raise HandshakeRefused(response.status, response.body)
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            if response.header("sec-websocket-accept") != accept:
                raise BadMessage("wrong Sec-WebSocket-Accept")
        except Exception:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            raise
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer)

    def _frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        head = bytes([0x80 | opcode])
        if size < 126:
            head += bytes([0x80 | size])
        elif size < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", size)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def send_text(self, text: str) -> None:
        self._frame(TEXT, text.encode())
        await self.writer.drain()

    async def receive(self) -> str | None:
        """The next text message, or None once the connection is closed (by either side,
        cleanly or not: close_code says which, None if it just ended)."""
        parts: list[bytes] = []
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                opcode, fin = first & 0x0F, first & 0x80
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
                if size > MAX_FRAME or second & 0x80:  # a server never masks
                    raise BadMessage("bad frame from the server")
                payload = await self.reader.readexactly(size) if size else b""
                if opcode == PING:
                    self._frame(PONG, payload)
                elif opcode == CLOSE:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if size >= 2 else 1005
                    with contextlib.suppress(OSError):
                        self._frame(CLOSE, payload[:2])
                    self.close()
                    return None
                elif opcode in (TEXT, BINARY, CONTINUATION):
                    parts.append(payload)
                    if fin:
                        return b"".join(parts).decode(errors="replace")
        except (OSError, asyncio.IncompleteReadError, BadMessage):
            self.close()
            return None

    def close(self) -> None:
        """Drop the connection (a virtual user leaving does not wait for a close frame)."""
        self.writer.close()
