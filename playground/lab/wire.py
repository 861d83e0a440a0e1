"""HTTP/1.1 over asyncio streams, just what the lab needs: heads, Content-Length bodies,
keep-alive connections. Used by the balancer (both sides), the users and the health
checks. No Django imports here (the worker has its own, smaller copy of the server side).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class BadMessage(Exception):
    """The peer sent something that is not HTTP/1.1 as this module speaks it."""


@dataclass
class Message:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def all_headers(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Request(Message):
    method: str = "GET"
    target: str = "/"

    def cookie(self, name: str) -> str | None:
        for header in self.all_headers("cookie"):
            for part in header.split(";"):
                key, _, value = part.strip().partition("=")
                if key == name:
                    return value
        return None

    def encode(self, extra: list[tuple[str, str]] | None = None) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in HOP_BY_HOP]
        lines += [f"{k}: {v}" for k, v in extra or []]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Response(Message):
    status: int = 200
    reason: str = "OK"

    def encode(self, *, keep_alive: bool, extra: list[tuple[str, str]] | None = None) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in HOP_BY_HOP]
        lines += [f"{k}: {v}" for k, v in extra or []]
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def error_response(status: int, text: str, *, source: str = "balancer") -> Response:
    body = json.dumps({"error": text}).encode()
    headers = [("Content-Type", "application/json"), ("X-Error-Source", source)]
    return Response(status=status, reason=HTTPStatus(status).phrase, headers=headers, body=body)


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadMessage(f"bad header line {line!r}")
        headers.append((name, value.strip()))
    return headers


async def _read_head(reader: asyncio.StreamReader) -> list[str] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    except asyncio.LimitOverrunError as exc:
        raise BadMessage("head too large") from exc
    return head[:-4].decode("latin-1").split("\r\n")


async def _read_body(reader: asyncio.StreamReader, message: Message) -> bytes:
    length = message.header("content-length")
    if message.header("transfer-encoding"):
        raise BadMessage("chunked bodies are not spoken here")
    if length is None:
        return b""
    try:
        size = int(length)
    except ValueError as exc:
        raise BadMessage(f"bad Content-Length {length!r}") from exc
    if not 0 <= size <= MAX_BODY:
        raise BadMessage(f"body of {size} bytes refused")
    return await reader.readexactly(size) if size else b""


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request, or None if the client closed the connection between requests."""
    lines = await _read_head(reader)
    if lines is None:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadMessage(f"bad request line {lines[0]!r}")
    request = Request(
        method=parts[0], target=parts[1], version=parts[2], headers=_parse_headers(lines[1:])
    )
    request.body = await _read_body(reader, request)
    return request


async def read_response(reader: asyncio.StreamReader) -> Response:
    """The next response; raises if the connection ends before a whole one arrived."""
    lines = await _read_head(reader)
    if lines is None:
        raise asyncio.IncompleteReadError(b"", None)
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise BadMessage(f"bad status line {lines[0]!r}")
    response = Response(
        status=int(code), reason=reason, version=version, headers=_parse_headers(lines[1:])
    )
    response.body = await _read_body(reader, response)
    return response


class Connection:
    """One client-side keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, within: float) -> Connection:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        return cls(reader, writer)

    @property
    def usable(self) -> bool:
        """False once the peer closed it or it broke (checked before reusing it)."""
        return not (
            self.writer.is_closing() or self.reader.at_eof() or self.reader.exception() is not None
        )

    async def send(self, request: Request, extra: list[tuple[str, str]] | None = None) -> None:
        self.writer.write(request.encode(extra))
        await self.writer.drain()

    async def exchange(
        self, request: Request, extra: list[tuple[str, str]] | None = None
    ) -> Response:
        await self.send(request, extra)
        response = await read_response(self.reader)
        if not response.keep_alive:
            self.close()
        return response

    def close(self) -> None:
        self.writer.close()
