"""A blocking WebSocket client on the standard library, for tests that talk to a real server
from the test process (where Twisted is already loaded, so autobahn's asyncio client of
bench/ws.py cannot be). Text frames and close frames only; enough to hear how a socket ends."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import urllib.parse
from dataclasses import dataclass


@dataclass
class Ended:
    """How the connection ended: `code` from the server's close frame, or 1006 (dropped
    without one, as a browser reports it)."""

    code: int
    reason: str


class WebSocketClient:
    def __init__(self, url: str, *, origin: str, cookie: str = "", timeout: float = 10) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {parts.path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {origin}",
            *([f"Cookie: {cookie}"] if cookie else []),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("the server closed the handshake")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        self.ended: Ended | None = None if self.status == 101 else Ended(1006, "refused")

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionResetError("dropped")
            data += chunk
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send(0x1, text.encode())

    def recv(self, timeout: float = 10) -> str | None:
        """The next text frame; None once the connection has ended (see `ended`)."""
        if self.ended is not None:
            return None
        self.sock.settimeout(timeout)
        try:
            while True:
                first, second = self._exactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", self._exactly(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", self._exactly(8))
                payload = self._exactly(size)
                opcode = first & 0x0F
                if opcode == 0x1:
                    return payload.decode()
                if opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    self.ended = Ended(code, payload[2:].decode(errors="replace"))
                    self._send(0x8, payload[:2])  # the closing handshake's answer
                    return None
                if opcode == 0x9:
                    self._send(0xA, payload)
        except (ConnectionResetError, BrokenPipeError):
            self.ended = Ended(1006, "dropped without a close frame")
            return None

    def close(self) -> None:
        if self.ended is None:
            with contextlib.suppress(OSError):
                self._send(0x8, struct.pack("!H", 1000))
        self.sock.close()
