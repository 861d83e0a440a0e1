"""One subscription to a lab's group per web process, shared by every socket of that lab
in the process (its owner's tabs, and a class of watchers).

Without it each socket is a member of the lab's Channels group: the lab host's one
group_send becomes one Redis message per socket, and channels-redis receives them one by
one, 200 round trips a tick for a class of 200 (measured by `make bench watchers`). With
it a tick is one message per web process, handed in memory to each socket here, which
sends the frame SnapshotFrames rendered once. The lab host's viewer leases stay per socket
(lab.attach / lab.detach), so a lab still lives exactly while someone watches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, Protocol

from playground import labprotocol

log = logging.getLogger("playground.feeds")

# The group messages a socket handles, and the method of the consumer that does.
HANDLERS = {
    "lab.snapshot": "lab_snapshot",
    "lab.closed": "lab_closed",
    "lab.unshared": "lab_unshared",
}
STOP_TIMEOUT = 2.0  # leaving the group waits no longer than this on Redis


class Subscriber(Protocol):
    async def lab_snapshot(self, event: dict[str, Any]) -> None: ...
    async def lab_closed(self, event: dict[str, Any]) -> None: ...
    async def lab_unshared(self, event: dict[str, Any]) -> None: ...


class LabFeed:
    """The lab's group, joined once by this process on a channel of its own."""

    def __init__(self, layer: Any, lab_id: str) -> None:
        self.layer = layer
        self.group = labprotocol.group_name(lab_id)
        self.sockets: set[Subscriber] = set()
        self.channel = ""
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # A channel of its own, not one of the process's "specific!" channels: those share
        # one receive loop (and its lock) with every socket of the process.
        self.channel = f"labfeed.{self.group}.{secrets.token_hex(8)}"
        await self.layer.group_add(self.group, self.channel)
        self.task = asyncio.create_task(self.run(), name=f"feed {self.group}")

    async def run(self) -> None:
        failing = False
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis down: each socket's watchdog notices the silence and says so.
                if not failing:
                    log.warning("feed of %s cannot receive: %r", self.group, exc)
                failing = True
                await asyncio.sleep(0.5)
                continue
            failing = False
            handler = HANDLERS.get(str(message.get("type")))
            if handler is None:
                continue
            for socket in list(self.sockets):
                try:
                    await getattr(socket, handler)(message)
                except Exception:
                    log.exception("a socket of %s failed on %s", self.group, message.get("type"))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.channel:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.layer.group_discard(self.group, self.channel)


class LabFeeds:
    """This process's feeds, one per lab with a socket here."""

    def __init__(self) -> None:
        self.feeds: dict[str, tuple[LabFeed, asyncio.Future[None]]] = {}

    async def join(self, layer: Any, lab_id: str, socket: Subscriber) -> None:
        """Count `socket` in the lab's feed, starting the feed if it is the first; raises
        (and counts nothing) if the feed cannot start (Redis down)."""
        entry = self.feeds.get(lab_id)
        if entry is None:
            feed = LabFeed(layer, lab_id)
            entry = (feed, asyncio.ensure_future(feed.start()))
            self.feeds[lab_id] = entry
        feed, started = entry
        feed.sockets.add(socket)
        try:
            await asyncio.shield(started)
        except Exception:
            feed.sockets.discard(socket)
            if self.feeds.get(lab_id) is entry:
                del self.feeds[lab_id]
            raise

    async def leave(self, lab_id: str, socket: Subscriber) -> None:
        """Take `socket` out; the last one out stops the feed and leaves the group."""
        entry = self.feeds.get(lab_id)
        if entry is None:
            return
        feed, started = entry
        feed.sockets.discard(socket)
        if not feed.sockets:
            del self.feeds[lab_id]
            with contextlib.suppress(Exception):
                await asyncio.shield(started)  # a start still on its way ends first
            await feed.stop()


lab_feeds = LabFeeds()
