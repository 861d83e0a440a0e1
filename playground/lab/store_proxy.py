"""A fault-injecting TCP proxy between a lab's workers and its store: added latency.

In the spirit of Toxiproxy's latency toxic: every chunk a worker sends to the store is
held `latency_ms` (plus up to `jitter_ms`, uniformly) before it is passed on, in order, so
each store round trip takes that much longer. Adjustable live. When the store is down,
new connections are closed at once and open ones end with it: the worker sees what it
would see from a dead Redis. No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from .served import ServedConnections

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 0.5


class StoreProxy:
    """Listens on 127.0.0.1:<port>; forwards to the store port `target()` names."""

    def __init__(self, target: Callable[[], int | None]) -> None:
        self.target = target
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._clients = ServedConnections(self._client, "store proxy")
        self._upstreams: set[asyncio.StreamWriter] = set()
        self._rng = random.Random()

    def delay(self) -> float:
        """Seconds to hold the next chunk."""
        extra = self._rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + extra) / 1000

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._clients.accept, HOST, 0, backlog=512)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def drop_connections(self) -> None:
        """Close every proxied connection (the store behind them is gone)."""
        self._clients.close_sockets()
        for writer in list(self._upstreams):
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        await self._clients.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            port = self.target()
            if port is None:
                return  # the store is down: the worker's connection closes at once
            async with asyncio.timeout(CONNECT_TIMEOUT):
                up_reader, upstream = await asyncio.open_connection(HOST, port)
            self._upstreams.add(upstream)
            await asyncio.gather(self._delayed(reader, upstream), self._pipe(up_reader, writer))
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            if upstream is not None:
                upstream.close()
                self._upstreams.discard(upstream)

    async def _delayed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Worker -> store: each chunk leaves `delay()` after it arrived, never before an
        earlier one (so a round trip is that much longer and the bytes stay in order)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        last_due = 0.0
        try:
            while True:
                data = await reader.read(65536)
                last_due = max(last_due, time.monotonic() + self.delay())
                queue.put_nowait((last_due, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Store -> worker: as it comes."""
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
