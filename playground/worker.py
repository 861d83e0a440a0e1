"""A shop worker: one real OS process serving a tiny HTTP/1.1 shop API on loopback.

In stateful mode sessions and carts live in this process's memory; in stateless mode
nothing survives between requests here: each request loads and saves its session in
Redis. Standard library only, never Django: spawn-to-ready is part of the lesson.

    python -m playground.worker --name worker-1 --mode stateful --port 0
    python -m playground.worker --name worker-2 --mode stateless --port 0 \\
        --redis-url redis://127.0.0.1:6379/0 --prefix lab:ab12cd:

It prints "READY <port>" on stdout once it accepts connections, exits 0 after draining
on SIGTERM, and exits by itself when its parent process goes away.
"""

# Why no redis-py here: python + asyncio start in ~60 ms on the course machine and
# `import redis.asyncio` alone adds ~70 ms, which would double spawn-to-ready, the number
# the restart lessons are about. A worker needs three commands (GET, SET EX, DEL), so it
# speaks RESP itself over asyncio streams (RedisSessions below); it is ~60 lines.

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
WATCHDOG_INTERVAL = 0.2
IDLE_GRACE = 0.1  # after SIGTERM, idle keep-alive connections are closed after this
REDIS_TIMEOUT = 1.0
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- session stores -----------------------------------------------------------------


class MemorySessions:
    """Stateful: sessions live in this dict and die with the process."""

    def __init__(self, ttl: float, max_sessions: int) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self.data: dict[str, tuple[float, dict[str, Any]]] = {}

    def count(self) -> int:
        # Every save re-inserts with the same TTL, so the dict is ordered by expiry: drop
        # expired sessions from the front (O(expired), /health runs five times a second).
        now = time.monotonic()
        while self.data:
            sid = next(iter(self.data))
            if self.data[sid][0] >= now:
                break
            del self.data[sid]
        return len(self.data)

    async def load(self, sid: str) -> dict[str, Any] | None:
        item = self.data.get(sid)
        if item is None or item[0] < time.monotonic():
            self.data.pop(sid, None)
            return None
        return item[1]

    async def save(self, sid: str, session: dict[str, Any]) -> None:
        self.data.pop(sid, None)  # re-insert: the dict stays ordered by expiry
        self.data[sid] = (time.monotonic() + self.ttl, session)
        while len(self.data) > self.max_sessions:
            del self.data[next(iter(self.data))]

    async def delete(self, sid: str) -> None:
        self.data.pop(sid, None)

    async def close(self) -> None:
        return None


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


class RedisSessions:
    """Stateless: every request loads and saves its session in Redis (a small pool)."""

    def __init__(self, url: str, prefix: str, ttl: float) -> None:
        self.host, self.port, self.username, self.password, self.db = parse_redis_url(url)
        self.prefix = prefix
        self.ttl = max(1, int(ttl))
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def count(self) -> int:
        return 0  # nothing is held in this process's memory

    def key(self, sid: str) -> str:
        return f"{self.prefix}session:{sid}"

    async def load(self, sid: str) -> dict[str, Any] | None:
        raw = await self.command("GET", self.key(sid))
        return None if raw is None else json.loads(raw)

    async def save(self, sid: str, session: dict[str, Any]) -> None:
        await self.command("SET", self.key(sid), json.dumps(session), "EX", str(self.ttl))

    async def delete(self, sid: str) -> None:
        await self.command("DEL", self.key(sid))

    async def command(self, *args: str) -> Any:
        conn = self.idle.pop() if self.idle else None
        try:
            if conn is None:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    conn = await self.connect()
            async with asyncio.timeout(REDIS_TIMEOUT):
                reply = await self.call(conn, args)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            if conn is not None:
                conn[1].close()
            raise RedisError(f"Redis unavailable: {exc!r}") from exc
        except BaseException:
            if conn is not None:
                conn[1].close()
            raise
        self.idle.append(conn)
        return reply

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        conn = await asyncio.open_connection(self.host, self.port)
        if self.password:
            auth = (self.username, self.password) if self.username else (self.password,)
            await self.call(conn, ("AUTH", *auth))
        if self.db:
            await self.call(conn, ("SELECT", str(self.db)))
        return conn

    @staticmethod
    async def call(
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], args: tuple[str, ...]
    ) -> Any:
        reader, writer = conn
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        writer.write(b"".join(out))
        return await RedisSessions.reply(reader)

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
            return None if size < 0 else [await RedisSessions.reply(reader) for _ in range(size)]
        raise RedisError(f"unexpected Redis reply {line!r}")

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


# -- the shop ------------------------------------------------------------------------


class Shop:
    def __init__(self, args: argparse.Namespace) -> None:
        self.name = args.name
        self.mode = args.mode
        self.work = args.work_ms / 1000
        self.sessions: MemorySessions | RedisSessions
        if args.mode == "stateless":
            if not args.redis_url:
                raise SystemExit("worker: --mode stateless needs --redis-url")
            self.sessions = RedisSessions(args.redis_url, args.prefix, args.session_ttl)
        else:
            self.sessions = MemorySessions(args.session_ttl, args.max_sessions)
        self.started = time.monotonic()
        self.requests = 0
        self.inflight = 0
        self.orders = 0

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], list[str]]:
        """Return (status, JSON body, extra header lines)."""
        if path == "/health":
            if method != "GET":
                raise HttpError(405, "use GET")
            return 200, self.health(), []
        self.requests += 1
        self.inflight += 1
        try:
            return await self.route(method, path, headers, body)
        except RedisError as exc:
            return 503, {"error": str(exc)}, []
        finally:
            self.inflight -= 1

    def health(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": os.getpid(),
            "mode": self.mode,
            "sessions": self.sessions.count(),
            "inflight": self.inflight,
            "requests": self.requests,
            "uptime": round(time.monotonic() - self.started, 3),
        }

    async def route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], list[str]]:
        routes = {
            "/login": ("POST", self.login),
            "/logout": ("POST", self.logout),
            "/cart/items": ("POST", self.add_item),
            "/cart": ("GET", self.cart),
            "/checkout": ("POST", self.checkout),
        }
        if path not in routes:
            raise HttpError(404, f"no such page: {path}")
        allowed, view = routes[path]
        if method != allowed:
            raise HttpError(405, f"use {allowed}")
        if self.work:
            await asyncio.sleep(self.work)  # the shop's own work: prices, stock, a database
        return await view(headers, parse_json(body))

    async def login(
        self, headers: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[str]]:
        user = str(data.get("user", "anonymous"))[:64]
        sid = os.urandom(16).hex()
        await self.sessions.save(sid, {"user": user, "cart": []})
        cookie = f"session={sid}; Path=/; HttpOnly; SameSite=Lax"
        return 200, {"session": sid, "user": user, "worker": self.name}, [f"Set-Cookie: {cookie}"]

    async def logout(
        self, headers: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[str]]:
        sid, _ = await self.session(headers)
        await self.sessions.delete(sid)
        return 200, {"ok": True}, []

    async def add_item(
        self, headers: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[str]]:
        sku = data.get("sku")
        if not isinstance(sku, str) or not 0 < len(sku) <= 64:
            raise HttpError(400, 'send {"sku": "..."}')
        sid, session = await self.session(headers)
        session["cart"].append(sku)
        await self.sessions.save(sid, session)
        return 200, {"items": session["cart"]}, []

    async def cart(
        self, headers: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[str]]:
        _, session = await self.session(headers)
        return 200, {"items": session["cart"]}, []

    async def checkout(
        self, headers: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any], list[str]]:
        sid, session = await self.session(headers)
        if not session["cart"]:
            raise HttpError(400, "the cart is empty")
        items, session["cart"] = session["cart"], []
        await self.sessions.save(sid, session)
        self.orders += 1
        return 200, {"order": f"{self.name}-{os.getpid()}-{self.orders}", "items": items}, []

    async def session(self, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
        sid = session_id(headers)
        session = await self.sessions.load(sid) if sid else None
        if session is None:
            raise HttpError(401, "unknown session: log in again")
        return sid, session


def session_id(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "session":
            return value
    return ""


def parse_json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, "the body is not JSON") from exc
    if not isinstance(data, dict):
        raise HttpError(400, "the body must be a JSON object")
    return data


# -- HTTP/1.1 server --------------------------------------------------------------------


class Server:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.draining = False
        self.idle: set[asyncio.StreamWriter] = set()
        self.connections: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self.connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.idle.discard(writer)
            writer.close()
            self.connections.discard(task)
            if self.draining and not self.connections:
                self.done.set()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self.draining:
            self.idle.add(writer)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return  # the client closed a kept-alive connection
            finally:
                self.idle.discard(writer)
            keep_alive = await self.request(head, reader, writer)
            await writer.drain()
            if not keep_alive:
                return

    async def request(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            write_response(writer, self.shop.name, 400, {"error": "bad request line"}, [], False)
            return False
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
            write_response(writer, self.shop.name, 413, {"error": "bad body length"}, [], False)
            return False
        body = await reader.readexactly(length) if length else b""
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            status, data, extra = await self.shop.handle(
                method, target.split("?", 1)[0], headers, body
            )
        except HttpError as exc:
            status, data, extra = exc.status, {"error": exc.message}, []
        except Exception as exc:  # a bug must cost one request, not the connection
            print(f"worker {self.shop.name}: {method} {target}: {exc!r}", file=sys.stderr)
            status, data, extra = 500, {"error": "internal error"}, []
        keep_alive = keep_alive and not self.draining
        write_response(writer, self.shop.name, status, data, extra, keep_alive)
        return keep_alive

    def drain(self) -> None:
        """SIGTERM: accept nothing new, let busy connections finish their request, close
        idle ones after a short grace (a request may already be on its way in one: the
        signal can be handled before its bytes are read), then exit."""
        self.draining = True
        asyncio.get_running_loop().call_later(IDLE_GRACE, self.close_idle)
        if not self.connections:
            self.done.set()

    def close_idle(self) -> None:
        for writer in list(self.idle):
            writer.close()


def write_response(
    writer: asyncio.StreamWriter,
    worker: str,
    status: int,
    data: dict[str, Any],
    extra: list[str],
    keep_alive: bool,
) -> None:
    body = json.dumps(data).encode()
    head = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"X-Worker: {worker}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *extra,
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


# -- process life -------------------------------------------------------------------------


async def watchdog(parent: int) -> None:
    """Second guard next to PR_SET_PDEATHSIG, which fires when the *thread* that spawned
    us ends, or never if it was not set: exit as soon as our parent process changes."""
    while True:
        if os.getppid() != parent:
            os._exit(70)
        await asyncio.sleep(WATCHDOG_INTERVAL)


async def main(args: argparse.Namespace) -> int:
    parent = args.parent_pid or os.getppid()
    if os.getppid() != parent:
        return 70  # the spawner died before we even started
    shop = Shop(args)
    server = Server(shop)
    listener = await asyncio.start_server(
        server.serve, args.host, args.port, limit=MAX_HEAD, backlog=512
    )
    port = listener.sockets[0].getsockname()[1]

    def stop() -> None:
        listener.close()
        server.drain()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    guard = asyncio.create_task(watchdog(parent))
    os.write(1, f"READY {port}\n".encode())
    await server.done.wait()
    guard.cancel()
    await shop.sessions.close()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m playground.worker", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=("stateful", "stateless"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--prefix", default="lab:default:")
    parser.add_argument("--session-ttl", type=float, default=1800.0)
    parser.add_argument("--max-sessions", type=int, default=100_000)
    parser.add_argument("--work-ms", type=float, default=0.0, help="simulated work per request")
    parser.add_argument("--parent-pid", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
