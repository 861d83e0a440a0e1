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
from http import HTTPStatus
from typing import Any

from config.lifeline import die_with

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
WATCHDOG_INTERVAL = 0.2
IDLE_GRACE = 0.1  # after SIGTERM, idle keep-alive connections are closed after this
REDIS_TIMEOUT = 1.0


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
            return self.health_answer(method)
        self.requests += 1
        self.inflight += 1
        try:
            return await self.route(method, path, headers, body)
        except RedisError as exc:
            return 503, {"error": str(exc)}, []
        finally:
            self.inflight -= 1

    def health_answer(self, method: str) -> tuple[int, dict[str, Any], list[str]]:
        """GET /health needs no work and no session: answered without a task."""
        if method != "GET":
            raise HttpError(405, "use GET")
        return 200, self.health(), []

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
    """Every connection of this worker, and their draining on SIGTERM."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.draining = False
        self.connections: set[HttpConnection] = set()
        self.done = asyncio.Event()

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    def gone(self, connection: HttpConnection) -> None:
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


# -- process life -------------------------------------------------------------------------


async def watchdog(parent: int) -> None:
    """Second guard next to PR_SET_PDEATHSIG, which fires when the *thread* that spawned
    us ends, or never if it was not set: exit as soon as our parent process is gone.

    A pidfd of the parent turns readable when it exits, so the event loop tells us at
    no cost. Polling getppid() every 200 ms cost each worker five wakeups a second, 0.7
    to 1.5 ms of CPU a second on the course machine: a tenth of a core at 40 labs.
    Without pidfds (not Linux 5.3+, or refused) the worker polls as before.
    """
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    # Checked after opening: if the parent had already gone, the pid could name another.
    if os.getppid() != parent:
        os._exit(70)
    if pidfd is None:
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            if os.getppid() != parent:
                os._exit(70)
    loop = asyncio.get_running_loop()
    loop.add_reader(pidfd, os._exit, 70)
    try:
        await loop.create_future()  # until cancelled at a normal exit
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def main(args: argparse.Namespace) -> int:
    parent = args.parent_pid or os.getppid()
    # The lifeline is set here rather than in a preexec_fn so that the lab host can spawn
    # with vfork instead of fork-copying its memory for each worker. Unlike the watchdog,
    # it also reaches a paused (SIGSTOPped) worker.
    if not die_with(parent):
        return 70  # the spawner died before we even started
    shop = Shop(args)
    server = Server(shop)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server.protocol, args.host, args.port, backlog=512)
    port = listener.sockets[0].getsockname()[1]

    def stop() -> None:
        listener.close()
        server.drain()

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
