"""The lab socket: relays a learner's commands to the lab host and its snapshots back as HTML.

Thin on purpose: it checks who is asking and what they ask (labprotocol.command_parse), forwards
it over the Channels layer, and renders what the host pushes with template partials. It holds
no lab state; the lab lives in the lab host process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string

from config.views import REDIS_ERRORS
from course.records import experiment_outcome_arecord
from playground import labclient, labprotocol
from playground.feeds import lab_feeds
from playground.lab.config import MAX_WORKERS

log = logging.getLogger("playground.consumers")

TEMPLATE = "playground/lab.html"
MESSAGES_PER_SECOND = 10  # per browser session, whatever number of sockets it has open
MESSAGE_BURST = 20
# Sockets, counted in Redis across web processes (see docs/playground-contract.md, Limits).
# Keyed by browser session and lab, never by IP address: a class behind one NAT address
# shares nothing. A learner keeps a few tabs; a classroom watches one projected lab.
SOCKETS_PER_SESSION = 8
SOCKETS_PER_LAB = 300
# And per web process, counted here: past this a process is busy relaying snapshots and
# its page requests wait.
SOCKETS_PER_PROCESS = 1000
SOCKET_LEASE = 30.0  # a claim lapses unless renewed: a web process that dies frees its sockets
WATCH_INTERVAL = 0.5
REATTACH_AFTER = 1.5  # no word from the host for this long: ask again (and renew the lease)
LEASE_RENEWAL = 10.0
HOST_SILENT = 4.0  # no word for this long: the host is gone
LEAVE_TIMEOUT = 2.0  # cleaning up after a socket waits no longer than this on Redis
# What a Redis outage raises here (a bounded wait on a hung Redis: TimeoutError).
OUTAGE_ERRORS = (*REDIS_ERRORS, TimeoutError)
RESTARTING = "This web server is restarting: the page reconnects on its own."
HOST_GONE = "The lab host stopped answering, so this lab is gone."
LAB_ENDED = "This lab has ended."
FORBIDDEN = "This lab belongs to another browser session."
NOT_SHARED = "No lab is shared under this code."
UNSHARED = labclient.SHARING_ENDED[labprotocol.WATCH_STOPPED]
WATCHING = "You are watching this lab: only its owner can act on it."


@dataclass(frozen=True)
class Refusal:
    """Why a socket may not show a lab: its close code, the message, the kind of close."""

    code: int
    reason: str
    kind: str


def log_failure(what: str, exc: BaseException) -> None:
    """One line for a Redis outage (expected while it lasts), a traceback for anything else."""
    log.warning("%s: %r", what, exc, exc_info=not isinstance(exc, OUTAGE_ERRORS))


class SnapshotFrames:
    """The text frame of each lab's latest snapshot, rendered once per web process and sent
    as is to every socket watching that lab here (5 a second per lab, whatever the number of
    viewers): once for its owner's sockets and once for its class's (watchers see no
    controls). One tick per lab, the entries dropped when the lab's last socket here leaves."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, bool], tuple[float, str]] = {}
        self.sockets: Counter[str] = Counter()

    def frame(
        self, lab_id: str, snapshot: dict[str, Any], sent_at: float | None, *, watching: bool
    ) -> str:
        """`sent_at` names the tick (the host's time of the snapshot); None: not shared.
        The frame carries it too, so a client can measure the update lag."""
        cached = self.latest.get((lab_id, watching))
        if sent_at is not None and cached is not None and cached[0] == sent_at:
            return cached[1]
        context = lab_context(lab_id, snapshot, watching=watching)
        html = render_to_string(f"{TEMPLATE}#live", context)
        text = json.dumps(
            {"type": "snapshot", "snapshot": snapshot, "html": html, "sent_at": sent_at}
        )
        if sent_at is not None and lab_id in self.sockets:
            self.latest[(lab_id, watching)] = (sent_at, text)
        return text

    def opened(self, lab_id: str) -> None:
        self.sockets[lab_id] += 1

    def closed(self, lab_id: str) -> None:
        self.sockets[lab_id] -= 1
        if self.sockets[lab_id] <= 0:
            del self.sockets[lab_id]
            self.latest.pop((lab_id, False), None)
            self.latest.pop((lab_id, True), None)

    def total(self) -> int:
        return self.sockets.total()


snapshot_frames = SnapshotFrames()


class LabConsumer(AsyncJsonWebsocketConsumer):
    """/ws/labs/<lab_id>/: only the browser session that started the lab may use it."""

    # The clock the command rate limit reads (wall-clock time: web processes share the
    # limit): a class attribute so that a test can give the socket a clock of its own, and
    # prove a refill without waiting for one.
    limiter_clock = staticmethod(time.time)
    sockets_per_session = SOCKETS_PER_SESSION
    sockets_per_lab = SOCKETS_PER_LAB
    sockets_per_process = SOCKETS_PER_PROCESS
    outcome_recorded = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Whatever ends the socket (the browser, an exception, daphne cancelling it), it
        # leaves its lab's feed and gives back what it holds; channels' disconnect() runs only
        # for a browser that said goodbye.
        self.finished = False
        self.counted = False
        self.joined = False
        self.claims: list[str] = []
        self.watchdog: asyncio.Task[None] | None = None
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # daphne cancels every socket's application when it shuts down (Ctrl-C, SIGTERM),
            # while the connections are still open, then drops them (1006). The drop is
            # right: the htmx ws extension reconnects on 1006 (the page reads
            # "Reconnecting…") and the lab lives on in the lab host. A close code cannot do
            # better: daphne's autobahn refuses 1012 "service restart" from an application,
            # and a 4xxx code would end the page. So the socket only says why first (plain
            # daphne 4.2.3 often cancels nothing on shutdown: config.webserver mends that).
            # (daphne also cancels an application that outlives its socket: that goes nowhere.)
            await self.send_error(RESTARTING)
            self.finished = True
            raise
        finally:
            await self.leave()

    async def connect(self) -> None:
        self.lab_id: str = ""
        self.host = ""  # the lab's host, from its registry record
        self.host_instance: str | None = None
        self.heard = time.monotonic()
        self.attached_at = 0.0
        self.renewed_at = time.monotonic()
        # Accept first, then close with a code: a refused handshake reads as a network error
        # (1006) in the browser, and htmx would retry it forever.
        await self.accept()
        found = await self.lab_find()
        if isinstance(found, Refusal):
            await self.end(code=found.code, reason=found.reason, kind=found.kind)
            return
        self.lab_id = found.lab_id
        refusal = await self.claim()
        if refusal:
            await self.end(code=labprotocol.CLOSE_TOO_MANY, reason=refusal, kind="closed")
            return
        # Which host runs the lab: every attach and command goes to that host's channel.
        self.host = found.host
        await self.attach()
        self.watchdog = asyncio.create_task(self.watch())

    async def lab_find(self) -> labclient.LabRecord | Refusal:
        """The lab this socket may show (its registry record), or why it may not."""
        session = self.scope.get("session")
        self.owner = await session.aget("lab_owner") if session is not None else None
        lab_id = str(self.scope["url_route"]["kwargs"]["lab_id"])
        if not self.owner or not labprotocol.LAB_ID.match(lab_id):
            return Refusal(labprotocol.CLOSE_FORBIDDEN, FORBIDDEN, "refused")
        record = await asyncio.to_thread(labclient.lab_get, lab_id)
        if record is None:
            return Refusal(labprotocol.CLOSE_GONE, LAB_ENDED, "closed")
        return record

    # A watcher's socket has the code of the lab it watches (WatchConsumer); an owner's none.
    watch_code: str | None = None

    def credentials(self) -> dict[str, str]:
        """What the lab host checks on an attach: the owner's token."""
        return {"owner": str(self.owner)}

    def session_limit_key(self) -> str:
        return labprotocol.session_sockets_key(str(self.owner))

    async def claim(self) -> str | None:
        """Count this socket in the limits; why not, if it is one too many."""
        if snapshot_frames.total() >= self.sockets_per_process:
            return "This server is too busy to show more labs now. Try again in a minute."
        snapshot_frames.opened(self.lab_id)
        self.counted = True
        now = time.time()
        limits = [
            (
                self.session_limit_key(),
                self.sockets_per_session,
                f"Too many lab tabs are open in this browser (at most "
                f"{self.sockets_per_session}). Close one and reload this page.",
            ),
            (
                labprotocol.lab_sockets_key(self.lab_id),
                self.sockets_per_lab,
                f"This lab has too many viewers (at most {self.sockets_per_lab}).",
            ),
        ]
        for key, limit, refusal in limits:
            counted = await asyncio.to_thread(
                labclient.socket_claim,
                key=key,
                socket=self.channel_name,
                limit=limit,
                now=now,
                lease=SOCKET_LEASE,
            )
            if not counted:
                return refusal
            self.claims.append(key)
        return None

    async def disconnect(self, code: int) -> None:
        self.finished = True  # the rest is leave(), which runs however the socket ended

    async def leave(self) -> None:
        """Give back what this socket holds. Runs once, bounded: Redis may be the reason."""
        self.finished = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            try:
                await self.watchdog
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("the watchdog of lab socket %s failed", self.channel_name)
            self.watchdog = None
        if self.counted:
            snapshot_frames.closed(self.lab_id)
            self.counted = False
        claims, self.claims = self.claims, []
        joined, self.joined = self.joined, False
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                if claims:
                    await asyncio.to_thread(
                        labclient.socket_release, keys=claims, socket=self.channel_name
                    )
                if joined:
                    await lab_feeds.leave(self.lab_id, self)
                    await self.to_host("lab.detach")
        except Exception as exc:
            # The group's entry then lapses with the layer's group expiry; the host's viewer
            # lease and the socket claims lapse sooner. An outage is one line, not a traceback.
            log_failure(f"lab socket {self.channel_name} left without cleaning up", exc)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.finished:
            return
        try:
            allowed = await asyncio.to_thread(
                labclient.command_allow,
                key=labprotocol.session_commands_key(self.rate_key()),
                now=self.limiter_clock(),
                rate=MESSAGES_PER_SECOND,
                burst=MESSAGE_BURST,
            )
            if not allowed:
                raise labprotocol.CommandError(
                    f"Too many messages: at most {MESSAGES_PER_SECOND} a second from this browser."
                )
            command = labprotocol.command_parse(text_data, bytes_data)
        except labprotocol.CommandError as exc:
            await self.send_error(str(exc))
            return
        await self.command(command)

    def rate_key(self) -> str:
        """Whose messages the rate limit counts together: the browser session's."""
        return str(self.owner)

    async def command(self, command: dict[str, Any]) -> None:
        try:
            await self.to_host("lab.command", owner=self.owner, **command)
        except Exception:
            # command_parse lets through only what the layer can carry; if that ever fails
            # anyway, the learner hears of it and the socket lives on.
            log.exception("could not send %s for lab %s", command["action"], self.lab_id)
            await self.send_error("The lab host could not be reached. Try again.")

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
        try:
            async with asyncio.timeout(REATTACH_AFTER):
                await self.to_host("lab.attach", **self.credentials())
        except Exception as exc:
            log_failure(f"lab socket could not attach to lab {self.lab_id}", exc)

    async def watch(self) -> None:
        """Renew the viewer lease; notice a host that went silent (killed, stopped)."""
        while not self.finished:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            if now - self.heard > HOST_SILENT:
                await self.end(code=labprotocol.CLOSE_HOST_DOWN, reason=HOST_GONE, kind="closed")
                return
            silent = now - self.heard > REATTACH_AFTER
            if (silent and now - self.attached_at > REATTACH_AFTER) or (
                now - self.attached_at > LEASE_RENEWAL
            ):
                await self.attach()
            if now - self.renewed_at > LEASE_RENEWAL:
                self.renewed_at = now
                await asyncio.to_thread(
                    labclient.socket_renew,
                    keys=self.claims,
                    socket=self.channel_name,
                    now=time.time(),
                    lease=SOCKET_LEASE,
                )

    async def lab_attached(self, event: dict[str, Any]) -> None:
        self.heard = time.monotonic()
        if self.finished:
            return
        if self.host_instance is None:
            self.host_instance = await asyncio.to_thread(labclient.host_instance, self.host)
        if not self.joined:
            # The lab's snapshots come through this process's one feed of the lab.
            await lab_feeds.join(self.channel_layer, self.lab_id, self)
            self.joined = True
        if event.get("snapshot"):
            await self.send_frame(
                snapshot_frames.frame(
                    self.lab_id, event["snapshot"], None, watching=self.watch_code is not None
                )
            )

    async def lab_snapshot(self, event: dict[str, Any]) -> None:
        self.heard = time.monotonic()
        if not self.finished:
            # An experiment's outcome, once, by the session that started it (not its class).
            if not self.outcome_recorded and self.watch_code is None:
                session_key = getattr(self.scope.get("session"), "session_key", None)
                self.outcome_recorded = await experiment_outcome_arecord(
                    lab_id=self.lab_id,
                    session_key=session_key,
                    experiment=event["snapshot"].get("experiment"),
                )
            sent_at = event.get("sent_at")
            tick = float(sent_at) if isinstance(sent_at, int | float) else None
            await self.send_frame(
                snapshot_frames.frame(
                    self.lab_id, event["snapshot"], tick, watching=self.watch_code is not None
                )
            )

    async def lab_error(self, event: dict[str, Any]) -> None:
        self.heard = time.monotonic()
        await self.send_error(str(event.get("message", "The lab host refused that.")))

    async def lab_refused(self, event: dict[str, Any]) -> None:
        if self.watch_code is not None:
            # The lab's host no longer knows the code: sharing ended between two attaches.
            await self.end(code=labprotocol.CLOSE_UNSHARED, reason=UNSHARED, kind="closed")
            return
        await self.end(
            code=labprotocol.CLOSE_FORBIDDEN, reason=str(event.get("message", "")), kind="refused"
        )

    async def lab_unshared(self, event: dict[str, Any]) -> None:
        if self.watch_code is not None:
            await self.end(code=labprotocol.CLOSE_UNSHARED, reason=UNSHARED, kind="closed")

    async def lab_closed(self, event: dict[str, Any]) -> None:
        if self.finished:
            return
        # A lab host restarted under the same name (make run restarts one that was killed)
        # answers "this lab has ended" for a lab it never ran: that lab died with its host.
        # (No heartbeat at all: the host that ran it is stopping, and said why itself.)
        if self.host_instance is not None:
            serving = await asyncio.to_thread(labclient.host_instance, self.host)
            if serving is not None and serving != self.host_instance:
                await self.end(code=labprotocol.CLOSE_HOST_DOWN, reason=HOST_GONE, kind="closed")
                return
        await self.end(
            code=labprotocol.CLOSE_GONE,
            reason=str(event.get("reason") or LAB_ENDED),
            kind="closed",
        )

    # -- to the browser ----------------------------------------------------------------

    async def send_frame(self, text: str) -> None:
        """Send one text frame, unless the socket is closing: nothing is sent after close."""
        if self.finished:
            return
        try:
            await self.send(text_data=text)
        except Exception:
            # The browser began to close the socket before its disconnect reached us (daphne
            # raises "Attempt to send on a closed protocol"): nothing more to tell it.
            self.finished = True
            log.debug("lab socket %s closed under a send", self.channel_name, exc_info=True)

    async def send_error(self, message: str) -> None:
        if self.finished:
            return
        html = render_to_string(f"{TEMPLATE}#alert", {"message": message, "oob": True})
        await self.send_frame(json.dumps({"type": "error", "message": message, "html": html}))

    async def end(self, *, code: int, reason: str, kind: str) -> None:
        """Say why the lab is unavailable, then close; htmx does not reconnect on 4xxx."""
        if self.finished:
            return
        html = render_to_string(f"{TEMPLATE}#gone", {"reason": reason, "oob": True})
        await self.send_frame(
            json.dumps({"type": kind, "code": code, "message": reason, "html": html})
        )
        self.finished = True
        await self.close(code=code)


class WatchConsumer(LabConsumer):
    """/ws/watch/<code>/: a lab shared with a class, read-only, for anyone with its code.

    The same snapshots as the owner's socket, rendered without controls; commands are
    refused here, and the lab host checks the code on every attach (never an owner token,
    which a watcher never has). Sockets are counted per browser session and per lab.
    """

    async def lab_find(self) -> labclient.LabRecord | Refusal:
        session = self.scope.get("session")
        self.owner = None
        self.viewer = session.session_key if session is not None else None
        code = labprotocol.watch_code_parse(str(self.scope["url_route"]["kwargs"]["code"]))
        if code is None:
            return Refusal(labprotocol.CLOSE_GONE, NOT_SHARED, "closed")
        if not self.viewer:
            # One per browser session (the class's answers count so): the watch page gives
            # every visitor a session cookie.
            return Refusal(
                labprotocol.CLOSE_FORBIDDEN,
                "Open the watch link in a browser that keeps cookies, then reload.",
                "refused",
            )
        try:
            record = await asyncio.to_thread(labclient.watch_find, code)
        except labclient.WatchEnded as exc:
            return Refusal(labprotocol.CLOSE_UNSHARED, str(exc), "closed")
        if record is None:
            return Refusal(labprotocol.CLOSE_GONE, NOT_SHARED, "closed")
        self.watch_code = code
        return record

    def credentials(self) -> dict[str, str]:
        return {"watch": str(self.watch_code)}

    def session_limit_key(self) -> str:
        return labprotocol.session_sockets_key(f"watch:{self.viewer}")

    def rate_key(self) -> str:
        return f"watch:{self.viewer}"

    async def command(self, command: dict[str, Any]) -> None:
        if command["action"] != "answer":
            await self.send_error(WATCHING)
            return
        try:
            await self.to_host(
                "lab.answer",
                watch=self.watch_code,
                viewer=labprotocol.owner_digest(f"viewer:{self.viewer}"),
                value=command["value"],
            )
        except Exception:
            log.exception("could not send an answer for lab %s", self.lab_id)
            await self.send_error("The lab host could not be reached. Try again.")

    async def lab_answered(self, event: dict[str, Any]) -> None:
        """This watcher's own answer: said to them alone (snapshots carry only counts)."""
        seq, answer = event.get("seq"), str(event.get("answer", ""))
        html = render_to_string(f"{TEMPLATE}#mine", {"answer": answer, "seq": seq, "oob": True})
        await self.send_frame(json.dumps({"type": "answered", "seq": seq, "html": html}))


def lab_context(lab_id: str, snapshot: dict[str, Any], *, watching: bool) -> dict[str, Any]:
    """What the live partials need: the snapshot, plus a few values worked out for display
    (`watching`: for a class watching a shared lab, so without controls)."""
    workers = [
        {**w, "share_pct": round(float(w.get("share", 0)) * 100)}
        for w in snapshot.get("workers", [])
    ]
    uptime = snapshot.get("uptime") or 0
    deploys = snapshot.get("deploys") or []
    return {
        "oob": True,
        "lab_id": lab_id,
        "watching": watching,
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
        "store": snapshot.get("store"),
        "e": snapshot.get("experiment"),
        "poll": snapshot.get("poll"),
        "deploy_seconds": f"{deploys[-1]['seconds']:.1f}" if deploys else "–",
    }


def _clock(seconds: float) -> str:
    """Seconds since the lab started as m:ss."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


BAD_EVENTS = frozenset(
    {"killed", "crashed", "crash_loop", "down", "sessions_lost", "sessions_gone", "start_failed"}
)
GOOD_EVENTS = frozenset({"up", "started", "resumed", "restarted", "added", "finished"})
WARN_EVENTS = frozenset({"paused", "stopping", "stopped", "restarting", "removed", "failed"})


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
