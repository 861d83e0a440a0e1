"""The lab socket: relays a learner's commands to the lab host and its snapshots back as HTML.

Thin on purpose: it checks who is asking and what they ask (labprotocol.command_parse), forwards
it over the Channels layer, and renders what the host pushes with template partials. It holds
no lab state; the lab lives in the lab host process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string

from playground import labprotocol
from playground.lab.config import MAX_WORKERS
from playground.labclient import RateLimiter, host_name

TEMPLATE = "playground/lab.html"
MESSAGES_PER_SECOND = 10
MESSAGE_BURST = 20
WATCH_INTERVAL = 0.5
REATTACH_AFTER = 1.5  # no word from the host for this long: ask again (and renew the lease)
LEASE_RENEWAL = 10.0
HOST_SILENT = 4.0  # no word for this long: the host is gone


class LabConsumer(AsyncJsonWebsocketConsumer):
    """/ws/labs/<lab_id>/: only the browser session that started the lab may use it."""

    # The clock the rate limit reads: a class attribute so that a test can give the socket
    # a clock of its own, and prove a refill without waiting for one.
    limiter_clock = staticmethod(time.monotonic)

    async def connect(self) -> None:
        self.lab_id: str = self.scope["url_route"]["kwargs"]["lab_id"]
        self.group = labprotocol.group_name(self.lab_id)
        self.host = host_name()
        self.joined = False
        self.finished = False
        self.heard = time.monotonic()
        self.attached_at = 0.0
        self.limiter = RateLimiter(
            rate=MESSAGES_PER_SECOND, burst=MESSAGE_BURST, clock=self.limiter_clock
        )
        self.watchdog: asyncio.Task[None] | None = None
        session = self.scope.get("session")
        self.owner = await session.aget("lab_owner") if session is not None else None
        # Accept first, then close with a code: a refused handshake reads as a network error
        # (1006) in the browser, and htmx would retry it forever.
        await self.accept()
        if not self.owner or not labprotocol.LAB_ID.match(self.lab_id):
            await self.end(
                code=labprotocol.CLOSE_FORBIDDEN,
                reason="This lab belongs to another browser session.",
                kind="refused",
            )
            return
        await self.attach()
        self.watchdog = asyncio.create_task(self.watch())

    async def disconnect(self, code: int) -> None:
        self.finished = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watchdog
        if self.joined:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.to_host("lab.detach")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.finished:
            return
        try:
            if not self.limiter.allow():
                raise labprotocol.CommandError(
                    f"Too many messages: at most {MESSAGES_PER_SECOND} a second."
                )
            command = labprotocol.command_parse(text_data, bytes_data)
        except labprotocol.CommandError as exc:
            await self.send_error(str(exc))
            return
        await self.to_host("lab.command", owner=self.owner, **command)

    # -- to and from the lab host ------------------------------------------------------

    async def to_host(self, type_: str, **fields: Any) -> None:
        await self.channel_layer.send(
            self.host,
            {"type": type_, "lab_id": self.lab_id, "reply_channel": self.channel_name, **fields},
        )

    async def attach(self) -> None:
        self.attached_at = time.monotonic()
        # Bounded: with a hung Redis the send never returns, and the watchdog must go on to
        # notice the silence and say so, not leave a frozen page that reads "Live".
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REATTACH_AFTER):
                await self.to_host("lab.attach", owner=self.owner)

    async def watch(self) -> None:
        """Renew the viewer lease; notice a host that went silent (killed, stopped)."""
        while not self.finished:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            if now - self.heard > HOST_SILENT:
                await self.end(
                    code=labprotocol.CLOSE_HOST_DOWN,
                    reason="The lab host stopped answering, so this lab is gone.",
                    kind="closed",
                )
                return
            silent = now - self.heard > REATTACH_AFTER
            if (silent and now - self.attached_at > REATTACH_AFTER) or (
                now - self.attached_at > LEASE_RENEWAL
            ):
                await self.attach()

    async def lab_attached(self, event: dict[str, Any]) -> None:
        self.heard = time.monotonic()
        if not self.joined:
            await self.channel_layer.group_add(self.group, self.channel_name)
            self.joined = True
        if event.get("snapshot"):
            await self.send_snapshot(event["snapshot"])

    async def lab_snapshot(self, event: dict[str, Any]) -> None:
        self.heard = time.monotonic()
        if not self.finished:
            await self.send_snapshot(event["snapshot"])

    async def lab_error(self, event: dict[str, Any]) -> None:
        self.heard = time.monotonic()
        await self.send_error(str(event.get("message", "The lab host refused that.")))

    async def lab_refused(self, event: dict[str, Any]) -> None:
        await self.end(
            code=labprotocol.CLOSE_FORBIDDEN, reason=str(event.get("message", "")), kind="refused"
        )

    async def lab_closed(self, event: dict[str, Any]) -> None:
        await self.end(
            code=labprotocol.CLOSE_GONE,
            reason=str(event.get("reason") or "This lab has ended."),
            kind="closed",
        )

    # -- to the browser ----------------------------------------------------------------

    async def send_snapshot(self, snapshot: dict[str, Any]) -> None:
        html = render_to_string(f"{TEMPLATE}#live", lab_context(self.lab_id, snapshot))
        await self.send_json({"type": "snapshot", "snapshot": snapshot, "html": html})

    async def send_error(self, message: str) -> None:
        html = render_to_string(f"{TEMPLATE}#alert", {"message": message, "oob": True})
        await self.send_json({"type": "error", "message": message, "html": html})

    async def end(self, *, code: int, reason: str, kind: str) -> None:
        """Say why the lab is unavailable, then close; htmx does not reconnect on 4xxx."""
        if self.finished:
            return
        self.finished = True
        html = render_to_string(f"{TEMPLATE}#gone", {"reason": reason, "oob": True})
        await self.send_json({"type": kind, "code": code, "message": reason, "html": html})
        await self.close(code=code)


def lab_context(lab_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """What the live partials need: the snapshot, plus a few values worked out for display."""
    workers = snapshot.get("workers", [])
    uptime = snapshot.get("uptime") or 0
    return {
        "oob": True,
        "lab_id": lab_id,
        "s": snapshot,
        "workers": workers,
        "metrics": snapshot.get("metrics", {}),
        "events": [
            {**e, "clock": _clock(e.get("t", 0)), "tone": _tone(str(e.get("kind", "")))}
            for e in reversed(snapshot.get("events", []))
        ],
        "uptime": _clock(uptime),
        "workers_up": sum(1 for w in workers if w.get("status") == "up"),
        "can_add": len(workers) < MAX_WORKERS,
        "can_remove": len(workers) > 1,
    }


def _clock(seconds: float) -> str:
    """Seconds since the lab started as m:ss."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


BAD_EVENTS = frozenset(
    {"killed", "crashed", "crash_loop", "down", "sessions_lost", "sessions_gone", "start_failed"}
)
GOOD_EVENTS = frozenset({"up", "started", "resumed", "restarted", "added"})
WARN_EVENTS = frozenset({"paused", "stopping", "stopped", "restarting", "removed"})


def _tone(kind: str) -> str:
    """How an event reads at a glance: bad (something lost), warn, good (back up), plain."""
    suffix = kind.rsplit(".", 1)[-1]
    if suffix in BAD_EVENTS:
        return "bad"
    if suffix in GOOD_EVENTS:
        return "good"
    if suffix in WARN_EVENTS:
        return "warn"
    return "plain"
