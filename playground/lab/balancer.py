"""The load balancer: an asyncio HTTP reverse proxy on a real loopback port.

Round robin or least connections; sticky sessions through an inserted `LB` cookie (like
HAProxy's `cookie SERVERID insert`); passive health (refused, reset, timed-out requests)
and active health checks (GET /health every interval, fall/rise as in HAProxy). It never
retries a request that may have reached a worker: only a refused connection, where
nothing was sent, is redispatched. An `Upgrade: websocket` request is tunnelled: after the
worker's 101, bytes go both ways until either side closes; with room affinity (stateful
chat) `/chat/<room>` goes to the worker a hash of the room names, or the next live one.
No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .served import ServedConnections
from .wire import (
    BadMessage,
    Connection,
    Request,
    Response,
    error_response,
    read_request,
    read_response,
)

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 0.5
# A hung worker costs a request this long before a 504. Longer than a saturated worker's
# queue can grow (50 users x 40 ms of work = 2 s): overload shows as latency, not as 504s.
UPSTREAM_TIMEOUT = 3.0
STICKY_COOKIE = "LB"
# A WebSocket handshake waits for the worker's 101 this long: a reconnect storm queues
# handshakes in the workers (each one's work holds a slot), and that wait is the lesson.
UPGRADE_TIMEOUT = 10.0
TUNNEL_CHUNK = 64 * 1024


@dataclass(eq=False)
class Backend:
    """The balancer's view of one worker: where it listens and whether it is healthy."""

    name: str
    port: int | None = None
    healthy: bool = False
    draining: bool = False
    fails: int = 0  # consecutive failures (checks or requests)
    rises: int = 0  # consecutive successful checks while down
    inflight: int = 0
    tunnels: int = 0  # WebSockets open through it (after the 101)
    connecting: int = 0  # requests for which a connection to it is being opened
    no_connects: asyncio.Event = field(default_factory=asyncio.Event)
    dispatched: int = 0  # requests sent to it, ever
    failed: int = 0  # requests it failed mid-way or did not answer in time (502, 504), ever
    idle: list[Connection] = field(default_factory=list)
    health_conn: Connection | None = None
    health: dict[str, Any] | None = None  # the last /health answer
    health_at: float = 0.0
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=16))
    checker: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self.port is not None and self.healthy and not self.draining

    @property
    def sessions(self) -> int:
        return int(self.health["sessions"]) if self.health else 0

    @property
    def connections(self) -> int:
        """WebSockets open on it, as its last /health said."""
        return int(self.health.get("connections", 0)) if self.health else 0

    def rps(self, now: float, window: float = 1.0) -> float:
        """Requests per second over about the last second, from the worker's own
        request counter as the health checks read it."""
        recent = [s for s in self.samples if now - s[0] <= window + 0.3]
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return 0.0
        (t0, n0), (t1, n1) = recent[0], recent[-1]
        return round(max(0, n1 - n0) / (t1 - t0), 1)

    def take_idle(self) -> Connection | None:
        while self.idle:
            conn = self.idle.pop()
            if conn.usable:
                return conn
            conn.close()
        return None

    def drop_connections(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
        if self.health_conn is not None:
            self.health_conn.close()
            self.health_conn = None


HealthCallback = Callable[[Backend, bool, str], None]


class Balancer:
    """Listens on 127.0.0.1:<port>; on_health(backend, healthy, reason) is called when a
    backend goes down or comes back up."""

    def __init__(
        self,
        *,
        balancing: str = "round_robin",
        sticky: bool = True,
        interval: float = 0.2,
        timeout: float = 0.15,
        fall: int = 2,
        rise: int = 2,
        room_affinity: bool = False,
        on_health: HealthCallback | None = None,
    ) -> None:
        self.balancing = balancing
        self.sticky = sticky
        self.room_affinity = room_affinity
        self.interval = interval
        self.timeout = min(timeout, interval * 0.9)
        self.fall = fall
        self.rise = rise
        self.on_health = on_health
        self.backends: dict[str, Backend] = {}
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._clients = ServedConnections(self._client, "balancer")
        self._last = ""  # the backend chosen last, for round robin
        self.closing = False

    # -- life --

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._clients.accept, HOST, 0, backlog=512)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        self.closing = True
        if self._server is not None:
            self._server.close()
        checkers = [b.checker for b in self.backends.values() if b.checker is not None]
        for task in checkers:
            task.cancel()
        await asyncio.gather(self._clients.close(), *checkers, return_exceptions=True)
        for backend in self.backends.values():
            backend.drop_connections()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    # -- backends --

    def add(self, name: str) -> Backend:
        backend = Backend(name)
        self.backends[name] = backend
        backend.checker = asyncio.create_task(self._check_loop(backend))
        return backend

    def remove(self, name: str) -> None:
        backend = self.backends.pop(name, None)
        if backend is not None:
            if backend.checker is not None:
                backend.checker.cancel()
            backend.drop_connections()

    def set_address(self, name: str, port: int) -> None:
        """A (new) process of this backend accepts connections on `port`: in service."""
        backend = self.backends[name]
        backend.drop_connections()
        backend.port = port
        backend.healthy = True
        backend.draining = False
        backend.fails = backend.rises = 0
        backend.health = None
        backend.samples.clear()

    async def drain(self, name: str, within: float = 1.0) -> None:
        """Send it no new requests, and return once no request is still on its way to a
        new connection to it. A graceful stop deregisters the worker like this first."""
        backend = self.backends[name]
        backend.draining = True
        for conn in backend.idle:
            conn.close()
        backend.idle.clear()
        if backend.connecting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await backend.no_connects.wait()

    # -- health --

    def _failure(self, backend: Backend, reason: str) -> None:
        backend.fails += 1
        backend.rises = 0
        if backend.healthy and backend.fails >= self.fall:
            backend.healthy = False
            for conn in backend.idle:
                conn.close()
            backend.idle.clear()
            if self.on_health is not None:
                self.on_health(backend, False, reason)

    def _success(self, backend: Backend, *, check: bool) -> None:
        backend.fails = 0
        if backend.healthy or not check:
            return
        backend.rises += 1
        if backend.rises >= self.rise:
            backend.healthy = True
            backend.rises = 0
            if self.on_health is not None:
                self.on_health(backend, True, f"{self.rise} health checks in a row passed")

    async def _check_loop(self, backend: Backend) -> None:
        while True:
            await asyncio.sleep(self.interval)
            port = backend.port
            if port is None:
                continue
            try:
                async with asyncio.timeout(self.timeout):
                    data = await self._check(backend, port)
            except TimeoutError:
                reason = f"health check: no answer within {self.timeout * 1000:.0f} ms"
            except ConnectionRefusedError:
                reason = "health check: connection refused"
            except (OSError, asyncio.IncompleteReadError, BadMessage, ValueError) as exc:
                reason = f"health check: {type(exc).__name__}"
            else:
                if backend.port == port:
                    now = time.monotonic()
                    backend.health, backend.health_at = data, now
                    backend.samples.append((now, int(data.get("requests", 0))))
                    self._success(backend, check=True)
                continue
            if backend.health_conn is not None:
                backend.health_conn.close()
                backend.health_conn = None
            if backend.port == port:
                self._failure(backend, reason)

    async def _check(self, backend: Backend, port: int) -> dict[str, Any]:
        conn = backend.health_conn
        if conn is None or not conn.usable:
            if conn is not None:
                conn.close()  # the worker closed it, or died: its socket is ours to close
                backend.health_conn = None
            conn = backend.health_conn = await Connection.open(HOST, port, self.timeout)
        response = await conn.exchange(
            Request(method="GET", target="/health", headers=[("Host", f"{HOST}:{port}")])
        )
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data

    async def fetch_health(self, name: str, within: float = 0.5) -> dict[str, Any] | None:
        """Ask one worker for its /health right now (a fresh connection), or None."""
        return await self.ask(name, "GET", "/health", within)

    async def ask(
        self, name: str, method: str, path: str, within: float = 0.5
    ) -> dict[str, Any] | None:
        """Send one worker a request of the lab's own, directly (not through the balancer:
        /health, /handoff); its JSON answer, or None when it does not answer 200."""
        backend = self.backends.get(name)
        if backend is None or backend.port is None:
            return None
        conn: Connection | None = None
        try:
            async with asyncio.timeout(within):
                conn = await Connection.open(HOST, backend.port, within)
                response = await conn.exchange(Request(method=method, target=path))
                data = response.json() if response.status == 200 else None
        except (OSError, TimeoutError, asyncio.IncompleteReadError, BadMessage, ValueError):
            data = None
        finally:
            if conn is not None:
                conn.close()
        return data if isinstance(data, dict) else None

    # -- traffic --

    def choose(self, request: Request, tried: set[str]) -> Backend | None:
        candidates = [b for b in self.backends.values() if b.available and b.name not in tried]
        if not candidates:
            return None
        if self.sticky:
            pinned = self.backends.get(request.cookie(STICKY_COOKIE) or "")
            if pinned is not None and pinned in candidates:
                return pinned
        if self.balancing == "least_conn":
            fewest = min(b.inflight + b.tunnels for b in candidates)
            candidates = [b for b in candidates if b.inflight + b.tunnels == fewest]
        # Round robin: the first candidate after the one chosen last, in name order.
        names = list(self.backends)
        start = names.index(self._last) + 1 if self._last in self.backends else 0
        order = {name: (i - start) % len(names) for i, name in enumerate(names)}
        chosen = min(candidates, key=lambda b: order[b.name])
        self._last = chosen.name
        return chosen

    def choose_room(self, room: str, tried: set[str]) -> Backend | None:
        """Connection affinity: the worker a hash of the room names, in the order the
        workers were added; if it is out of service, the next live one after it."""
        names = list(self.backends)
        if not names:
            return None
        start = zlib.crc32(room.encode()) % len(names)
        for name in names[start:] + names[:start]:
            backend = self.backends[name]
            if backend.available and name not in tried:
                return backend
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            while not self.closing:
                try:
                    request = await read_request(reader)
                except BadMessage as exc:
                    bad = error_response(400, str(exc))
                    writer.write(bad.encode(keep_alive=False))
                    break
                if request is None:
                    break
                if (request.header("upgrade") or "").lower() == "websocket":
                    await self.tunnel(request, reader, writer, str(peer[0]))
                    break
                response, extra = await self.forward(request, str(peer[0]))
                keep_alive = request.keep_alive and not self.closing
                writer.write(response.encode(keep_alive=keep_alive, extra=extra))
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the connection ends (ServedConnections closes its socket)

    async def forward(
        self, request: Request, client: str = "127.0.0.1"
    ) -> tuple[Response, list[tuple[str, str]]]:
        """Send the request to a backend; return its response and headers to add."""
        tried: set[str] = set()
        while True:
            backend = self.choose(request, tried)
            if backend is None:
                text = "no worker accepted the connection" if tried else "no healthy worker"
                return error_response(503, text), []
            tried.add(backend.name)
            port = backend.port
            assert port is not None
            conn = backend.take_idle()
            if conn is None:
                backend.connecting += 1
                backend.no_connects.clear()
                try:
                    conn = await Connection.open(HOST, port, CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    # Nothing reached the worker: safe to try another one, even for a POST.
                    self._failure(backend, f"request: {describe_error(exc)}")
                    continue
                finally:
                    backend.connecting -= 1
                    if not backend.connecting:
                        backend.no_connects.set()
            backend.inflight += 1
            backend.dispatched += 1
            try:
                async with asyncio.timeout(UPSTREAM_TIMEOUT):
                    response = await conn.exchange(request, [("X-Forwarded-For", client)])
            except TimeoutError:
                conn.close()
                backend.failed += 1
                self._failure(backend, f"request: no answer within {UPSTREAM_TIMEOUT:g} s")
                return error_response(504, f"{backend.name} did not answer in time"), []
            except (OSError, asyncio.IncompleteReadError, BadMessage) as exc:
                # It may have done the work: never retried (POSTs are not idempotent).
                conn.close()
                backend.failed += 1
                self._failure(backend, f"request: {describe_error(exc)}")
                return error_response(502, f"{backend.name} failed mid-request"), []
            except BaseException:
                conn.close()
                raise
            finally:
                backend.inflight -= 1
            if response.keep_alive and backend.port == port and not backend.draining:
                backend.idle.append(conn)
            else:
                conn.close()
            self._success(backend, check=False)
            extra = []
            if self.sticky and request.cookie(STICKY_COOKIE) != backend.name:
                extra.append(("Set-Cookie", f"{STICKY_COOKIE}={backend.name}; Path=/"))
            return response, extra

    async def tunnel(
        self,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
    ) -> None:
        """Hand a WebSocket upgrade to a worker; after its 101, copy bytes both ways until
        either side closes (a killed worker's end closes the client's)."""
        room = request.target.split("?", 1)[0].removeprefix("/chat/")
        tried: set[str] = set()
        while True:
            if self.room_affinity and request.target.startswith("/chat/"):
                backend = self.choose_room(room, tried)
            else:
                backend = self.choose(request, tried)
            if backend is None:
                text = "no worker accepted the connection" if tried else "no healthy worker"
                writer.write(error_response(503, text).encode(keep_alive=False))
                return
            tried.add(backend.name)
            port = backend.port
            assert port is not None
            try:
                upstream = await Connection.open(HOST, port, CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                self._failure(backend, f"request: {describe_error(exc)}")
                continue  # nothing reached it: another worker may take the connection
            break
        try:
            head = [f"{request.method} {request.target} HTTP/1.1"]
            head += [f"{k}: {v}" for k, v in request.headers if k.lower() != "content-length"]
            head.append(f"X-Forwarded-For: {client}")
            upstream.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            backend.inflight += 1
            try:
                async with asyncio.timeout(UPGRADE_TIMEOUT):
                    response = await read_response(upstream.reader)
            finally:
                backend.inflight -= 1
        except TimeoutError:
            upstream.close()
            backend.failed += 1
            writer.write(
                error_response(504, f"{backend.name} did not answer in time").encode(
                    keep_alive=False
                )
            )
            return
        except (OSError, asyncio.IncompleteReadError, BadMessage) as exc:
            upstream.close()
            backend.failed += 1
            self._failure(backend, f"request: {describe_error(exc)}")
            writer.write(
                error_response(502, f"{backend.name} failed mid-request").encode(keep_alive=False)
            )
            return
        except BaseException:
            upstream.close()
            raise
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        lines += [f"{k}: {v}" for k, v in response.headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        if response.status != 101:
            upstream.close()
            return
        self._success(backend, check=False)
        backend.tunnels += 1
        try:
            await asyncio.gather(_pipe(reader, upstream.writer), _pipe(upstream.reader, writer))
        finally:
            backend.tunnels -= 1
            upstream.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until the source ends, then close the sink (and so the other direction)."""
    try:
        while data := await source.read(TUNNEL_CHUNK):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        sink.close()


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed mid-response"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__
