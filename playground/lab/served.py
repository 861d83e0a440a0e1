"""The connections a lab's own TCP server (the balancer, the store proxy) is serving.

`asyncio.start_server` hands each accepted connection to a callback; with a coroutine, the
connection becomes known to its server only once that task first runs. A server closed in
between (a lab stopping as a user connects) cancels nothing it knows of, and a task
cancelled before it ever ran never reaches its own `finally`: the socket stays open until
the garbage collector finds it. Here each connection is known from the moment it is
accepted, and its socket is closed when its task ends, however it ends. No Django imports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("playground.lab")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ServedConnections:
    """Pass `accept` to asyncio.start_server; `close()` ends every connection."""

    def __init__(self, handler: Handler, name: str) -> None:
        self.handler = handler
        self.name = name
        self.tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self.handler(reader, writer))
        self.tasks[task] = writer
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        writer = self.tasks.pop(task, None)
        if writer is not None:
            writer.close()
        if not task.cancelled() and task.exception() is not None:
            log.error("a connection to the %s failed", self.name, exc_info=task.exception())

    def close_sockets(self) -> None:
        """Close every connection's socket; their tasks see it end."""
        for writer in list(self.tasks.values()):
            writer.close()

    async def close(self) -> None:
        """Cancel every connection's task and wait for them (their sockets close with them)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
