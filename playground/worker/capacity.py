"""How much a worker can do at once: `concurrency` requests in service, each taking
`work_ms`; the rest wait in this worker's own queue. Standard library only.

The queue is the worker's, not the kernel's: the worker accepts every connection, so a
graceful stop can serve every queued request (connections left in the kernel's accept
backlog would be reset on close). The work is a real wait, as a request waiting on a
database is: it scales with workers, not with CPU cores.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Capacity:
    """A synchronous worker's limits, in an asyncio process: a semaphore and a sleep."""

    def __init__(self, concurrency: int, work_ms: float) -> None:
        self.concurrency = max(1, concurrency)
        self.work_seconds = max(0.0, work_ms) / 1000
        self.slots = asyncio.Semaphore(self.concurrency)
        self.queued = 0  # requests waiting for a slot
        self.busy = 0  # requests holding one

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the worker's slots for the body (waiting in the queue first)."""
        self.queued += 1
        try:
            await self.slots.acquire()
        finally:
            self.queued -= 1
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.slots.release()

    async def work(self) -> None:
        """The request's own work (prices, stock, a database): a real wait."""
        if self.work_seconds:
            await asyncio.sleep(self.work_seconds)
