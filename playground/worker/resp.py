"""Just enough of a Redis client for a worker: RESP over asyncio streams, a small pool.

Standard library only, never redis-py or Django (see below).
"""

# Why no redis-py here: python + asyncio start in ~60 ms on the course machine and
# `import redis.asyncio` alone adds ~70 ms, which would double spawn-to-ready, the number
# the restart lessons are about. A worker's sessions need three commands (GET, SET EX,
# DEL) and a connection at most two more (AUTH, SELECT), so it speaks RESP itself: this
# module.

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

REDIS_TIMEOUT = 1.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class RedisError(Exception):
    pass


def parse_redis_url(url: str) -> tuple[str, int, str | None, str | None, int]:
    """redis://[[user]:password@]host[:port][/db] -> (host, port, user, password, db).

    By hand: urllib.parse costs ~4 ms of every stateless worker's start.
    """
    if not url.startswith("redis://"):
        raise SystemExit(f"worker: unsupported Redis URL {url!r} (redis://host:port/db)")
    rest = url[len("redis://") :]
    rest, _, db = rest.partition("/")
    credentials, at, hostport = rest.rpartition("@")
    if not at:
        credentials, hostport = "", rest
    user, colon, password = credentials.partition(":")
    if not colon:
        user, password = "", credentials
    if hostport.startswith("["):  # [IPv6 address]:port
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    return (
        host or "127.0.0.1",
        int(port or 6379),
        unquote(user) or None,
        unquote(password) or None,
        int(db.split("?")[0] or 0),
    )


def unquote(text: str) -> str:
    """Percent-decoding, for passwords in URLs."""
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode())
    for part in parts[1:]:
        out += bytes([int(part[:2], 16)]) + part[2:].encode()
    return out.decode()


class RedisClient:
    """Commands to one Redis server over a small pool of idle connections."""

    def __init__(self, url: str) -> None:
        self.host, self.port, self.username, self.password, self.db = parse_redis_url(url)
        self.idle: list[Connection] = []

    async def command(self, *args: str) -> Any:
        """Send one command and return its reply; RedisError if Redis is unreachable."""
        return (await self.pipeline([args]))[0]

    async def pipeline(self, commands: Sequence[tuple[str, ...]]) -> list[Any]:
        """Send commands at once and read their replies: one round trip, not one each.
        RedisError if Redis is unreachable (or answers an error: the connection is then
        dropped, since replies after it are unread)."""
        if not commands:
            return []
        conn = self.idle.pop() if self.idle else None
        try:
            if conn is None:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    conn = await self.connect()
            async with asyncio.timeout(REDIS_TIMEOUT):
                conn[1].write(b"".join(encode(args) for args in commands))
                replies = [await RedisClient.reply(conn[0]) for _ in commands]
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            if conn is not None:
                conn[1].close()
            raise RedisError(f"Redis unavailable: {exc!r}") from exc
        except BaseException:
            if conn is not None:
                conn[1].close()
            raise
        self.idle.append(conn)
        return replies

    async def connect(self) -> Connection:
        conn = await asyncio.open_connection(self.host, self.port)
        if self.password:
            auth = (self.username, self.password) if self.username else (self.password,)
            await self.call(conn, ("AUTH", *auth))
        if self.db:
            await self.call(conn, ("SELECT", str(self.db)))
        return conn

    @staticmethod
    async def call(conn: Connection, args: tuple[str, ...]) -> Any:
        reader, writer = conn
        writer.write(encode(args))
        return await RedisClient.reply(reader)

    @staticmethod
    async def reply(reader: asyncio.StreamReader) -> Any:
        line = await reader.readuntil(b"\r\n")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else (await reader.readexactly(size + 2))[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [await RedisClient.reply(reader) for _ in range(size)]
        raise RedisError(f"unexpected Redis reply {line!r}")

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def encode(args: tuple[str, ...]) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
