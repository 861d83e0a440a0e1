"""Virtual chat users: each holds one WebSocket through the balancer to a room, chats at
its share of the lab's rate, and knows which messages it should have received.

What a user should have received: every message of its room sent while it was connected
(stateful: a room lives in one worker's memory, nothing is kept for an absent member),
and, stateless, also those sent while it was away, which it resumes with the id of the
last message it saw. A message still missing SETTLE seconds after it was sent, with its
user connected all that time, is missed. On a drop the user reconnects: with exponential
backoff and full jitter (sleep = random(0, min(CAP, BASE * 2**n)), AWS's "full jitter"), or
with jitter off at once, all together (the thundering herd), then backing off in step.
Nothing is modelled: every figure is a frame a user really sent or received.
No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from typing import Any

from .metrics import Histogram
from .websocket import HandshakeRefused, WebSocket
from .wire import BadMessage

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
BACKOFF_BASE = 1.0  # seconds: a reconnect's first wait is random(0, 1 s) with jitter
BACKOFF_CAP = 8.0
HANDSHAKE_TIMEOUT = 12.0  # longer than the balancer's wait for a 101 (its 504 comes first)
SETTLE = 5.0  # seconds a message may take to arrive before it counts as missed (a loaded
# 2-core machine can stall an event loop for a second or two: late is not lost)
PEAK_WINDOW = 0.1  # the reconnect peak is the busiest 100 ms, as a rate per second
HISTORY = 100  # what a worker shows a (re)connecting member (playground.worker.chat)
RECENT = 10  # a user checks that the room's history still holds the last 10 it saw
MAX_PENDING = 5000  # per user: beyond this an undelivered message counts as missed


class ChatTally:
    """What all the chat users of a lab measured, together."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.connections_dropped = 0
        self.reconnects = 0
        self.reconnect_times = Histogram()
        self.handshake_times = Histogram()  # a reconnect's own attempt: queueing shows here
        self.messages_sent = 0
        self.messages_delivered = 0
        self.messages_missed = 0
        self.history_lost_ids: set[str] = set()
        self.attempts: deque[float] = deque()
        self.peak_per_s = 0.0
        self.storm_started: float | None = None
        self.storm_down: set[str] = set()
        self.all_back_ms: float | None = None  # the longest storm, drop to all back

    def dropped(self, user: str, now: float) -> None:
        self.connections_dropped += 1
        if self.storm_started is None:
            self.storm_started = now
        self.storm_down.add(user)

    def attempt(self, now: float) -> None:
        """A reconnect attempt leaves now: the load a storm puts on the workers."""
        while self.attempts and self.attempts[0] <= now - PEAK_WINDOW:
            self.attempts.popleft()
        self.attempts.append(now)
        self.peak_per_s = max(self.peak_per_s, len(self.attempts) / PEAK_WINDOW)

    def reconnected(self, user: str, seconds: float, handshake: float, now: float) -> None:
        self.reconnects += 1
        self.reconnect_times.add(seconds)
        self.handshake_times.add(handshake)
        self.back(user, now)

    def back(self, user: str, now: float) -> None:
        """The user is connected again (or gone): the storm ends once all are."""
        self.storm_down.discard(user)
        if self.storm_started is not None and not self.storm_down:
            took = round((now - self.storm_started) * 1000, 1)
            self.all_back_ms = max(self.all_back_ms or 0.0, took)
            self.storm_started = None

    def summary(self, pending: int) -> dict[str, Any]:
        has = self.reconnect_times.total > 0
        return {
            "connections_dropped": self.connections_dropped,
            "reconnects": self.reconnects,
            "reconnect_p50_ms": (
                round(self.reconnect_times.percentile(50) * 1000, 1) if has else None
            ),
            "reconnect_p95_ms": (
                round(self.reconnect_times.percentile(95) * 1000, 1) if has else None
            ),
            "reconnect_all_back_ms": self.all_back_ms,
            "handshake_p95_ms": (
                round(self.handshake_times.percentile(95) * 1000, 1) if has else None
            ),
            "reconnect_peak_per_s": round(self.peak_per_s, 1),
            "messages_sent": self.messages_sent,
            "messages_delivered": self.messages_delivered,
            "messages_missed": self.messages_missed,
            "messages_pending": pending,
            "history_lost": len(self.history_lost_ids),
        }


class ChatUser:
    """One member of one room, always trying to be connected."""

    def __init__(self, name: str, room: str, crowd: ChatCrowd, seed: int | None = None) -> None:
        self.name = name
        self.room = room
        self.crowd = crowd
        self.tally = crowd.tally
        self.rng = random.Random(seed)
        self.ws: WebSocket | None = None
        self.worker: str | None = None  # the worker its connection is on
        self.connected_since: float | None = None  # when it got `ready` (time.monotonic)
        self.joined = False  # it was connected once: stateless, it resumes from `last`
        self.last = ""  # the seq of the last message it saw (or the room's, at ready)
        self.expect: dict[str, float] = {}  # message id -> when it was sent (monotonic)
        self.recent: deque[str] = deque(maxlen=RECENT)
        # Its own messages not yet echoed back (the echo is the acknowledgement): sent
        # again after a reconnect, as a chat client does; receivers ignore a second copy.
        self.unacked: dict[str, str] = {}
        self.sent = 0
        self.drops = 0  # its connection ended without it asking
        self.resumed = 0  # messages it got back on reconnecting (sent while it was away)
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    # -- life --

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"chat-{self.name}")

    async def stop(self) -> None:
        self.stopping = True
        task, self.task = self.task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a crashed user must not log "never retrieved"
        self.disconnect()

    def disconnect(self) -> None:
        self.connected_since = None
        self.worker = None
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def backoff(self, attempt: int) -> float:
        """Seconds before reconnect attempt number `attempt` (0: the first)."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        if self.crowd.jitter:
            return self.rng.uniform(0, ceiling)  # full jitter
        return 0.0 if attempt == 0 else min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))

    async def run(self) -> None:
        dropped_at: float | None = None
        attempt = 0
        while not self.stopping:
            if dropped_at is not None or attempt:
                await asyncio.sleep(self.backoff(attempt))
            attempted = time.monotonic()
            if dropped_at is not None:
                self.tally.attempt(attempted)
            seen = tuple(self.recent)  # before connect() adds what is resumed
            ready = await self.connect()
            if ready is None:
                attempt += 1
                continue
            now = time.monotonic()
            if dropped_at is not None:
                self.check_history(ready.get("history", []), seen)
                self.tally.reconnected(self.name, now - dropped_at, now - attempted, now)
            attempt = 0
            await self.resend()
            await self.chat()
            if self.stopping:
                return
            dropped_at = time.monotonic()
            self.drops += 1
            self.tally.dropped(self.name, dropped_at)

    async def connect(self) -> dict[str, Any] | None:
        """Open the WebSocket and read up to `ready` (resumed messages first); the ready
        frame, or None when it failed."""
        query = f"?user={self.name}" + (f"&last={self.last}" if self.last else "")
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                ws = await WebSocket.connect(HOST, self.crowd.port, f"/chat/{self.room}{query}")
                self.ws = ws
                while True:
                    text = await ws.receive()
                    if text is None:
                        self.disconnect()
                        return None
                    frame = json.loads(text)
                    if frame.get("type") == "ready":
                        break
                    self.resumed += 1
                    self.received(frame)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, BadMessage, HandshakeRefused):
            self.disconnect()
            return None
        except (ValueError, AttributeError):
            log.warning("%s got a frame that is not the chat's; reconnecting", self.name)
            self.disconnect()
            return None
        self.worker = frame.get("worker")
        self.last = str(frame.get("last") or self.last)
        self.connected_since = time.monotonic()
        self.joined = True
        return dict(frame)

    async def chat(self) -> None:
        """Receive until the connection ends, sending at this user's pace meanwhile."""
        ws = self.ws
        assert ws is not None
        sender = asyncio.create_task(self.send_loop(ws))
        try:
            while (text := await ws.receive()) is not None:
                try:
                    frame = json.loads(text)
                    if isinstance(frame, dict) and frame.get("type") == "message":
                        self.received(frame)
                except ValueError:
                    log.warning("%s got a frame that is not JSON", self.name)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self.disconnect()

    async def resend(self) -> None:
        ws = self.ws
        if ws is None or not self.unacked:
            return
        for message_id, text in list(self.unacked.items()):
            self.crowd.resending(self, message_id)
            try:
                await ws.send_text(json.dumps({"type": "send", "id": message_id, "text": text}))
            except OSError:
                return

    async def send_loop(self, ws: WebSocket) -> None:
        while True:
            await asyncio.sleep(self.crowd.period() * self.rng.uniform(0.5, 1.5))
            if self.crowd.quiet:
                continue
            self.sent += 1
            message_id = f"{self.name}:{self.sent}"
            text = f"hello {self.sent}"
            self.crowd.sending(self, message_id)
            self.unacked[message_id] = text
            try:
                await ws.send_text(json.dumps({"type": "send", "id": message_id, "text": text}))
            except OSError:
                return  # the receive loop sees the connection end

    # -- the user's truth --

    def received(self, frame: dict[str, Any]) -> None:
        message_id = str(frame.get("id", ""))
        self.unacked.pop(message_id, None)
        if self.expect.pop(message_id, None) is not None:
            self.tally.messages_delivered += 1
        self.last = str(frame.get("seq") or self.last)
        self.recent.append(message_id)

    def check_history(self, history: list[str], seen: tuple[str, ...]) -> None:
        """After a reconnect: the room's history must still hold the last messages this
        user saw before it reconnected (`seen`), unless so many came since that they are out
        of its window. Messages resumed on the new connection are not asked for: the worker
        reads the history a moment before it reads what to resume, so the newest of those
        may be in one and not yet in the other, and nothing of them was lost."""
        if len(history) >= HISTORY:
            return
        kept = set(history)
        self.tally.history_lost_ids.update(i for i in seen if i not in kept)

    def settle(self, now: float) -> None:
        """Count as missed what has not arrived SETTLE seconds after it was sent, while
        this user was connected."""
        since = self.connected_since
        for message_id, sent in list(self.expect.items()):  # oldest first
            if len(self.expect) > MAX_PENDING or (
                since is not None and now - max(sent, since) > SETTLE
            ):
                del self.expect[message_id]
                self.tally.messages_missed += 1
            else:
                break


class ChatCrowd:
    """All the chat users of a lab: `users` of them over `rooms` rooms, sending `rate`
    messages per second in total."""

    def __init__(
        self, *, port: int, users: int, rate: float, rooms: int, jitter: bool, resume: bool
    ) -> None:
        self.port = port
        self.rate = rate
        self.rooms = rooms
        self.jitter = jitter
        self.resume = resume  # stateless: an absent member resumes what it missed
        self.size = users
        self.tally = ChatTally()
        self.users: dict[str, ChatUser] = {}
        self.quiet = False  # users stop sending (to let what is on its way arrive)

    def period(self) -> float:
        return max(1, len(self.users)) / self.rate

    def room_of(self, number: int) -> str:
        """Rooms in blocks (users 1-4 in room-1, ...), not in turn: the balancer's round
        robin deals connections in turn, and with as many rooms as workers each room would
        sit whole on one worker, a stateless room as much as a stateful one."""
        return f"room-{min(self.rooms, (number - 1) * self.rooms // max(1, self.size) + 1)}"

    def _new(self, number: int) -> ChatUser:
        user = ChatUser(f"user-{number}", self.room_of(number), self)
        self.users[user.name] = user
        return user

    def start(self) -> None:
        for number in range(1, self.size + 1):
            self._new(number).start()

    async def resize(self, size: int) -> None:
        old, self.size = self.size, size
        if size > old:
            for number in range(old + 1, size + 1):
                self._new(number).start()
        else:
            leaving = [self.users.pop(f"user-{n}") for n in range(size + 1, old + 1)]
            await asyncio.gather(*(user.stop() for user in leaving))
            now = time.monotonic()
            for user in leaving:
                self.tally.back(user.name, now)

    async def close(self) -> None:
        await asyncio.gather(*(user.stop() for user in self.users.values()))

    async def restart(self) -> None:
        """Counters start afresh; users keep their connections and rooms."""
        for user in self.users.values():
            user.expect.clear()
        self.tally.reset()

    def sending(self, sender: ChatUser, message_id: str) -> None:
        """Who should receive this message: its room's connected members, and stateless
        also those who were once connected (they resume it when they come back)."""
        now = time.monotonic()
        self.tally.messages_sent += 1
        for user in self.users.values():
            if user.room != sender.room:
                continue
            if user.connected_since is not None or (self.resume and user.joined):
                user.expect[message_id] = now

    def resending(self, sender: ChatUser, message_id: str) -> None:
        """A message sent again after its sender reconnected: those still waiting for it
        wait from now."""
        now = time.monotonic()
        for user in self.users.values():
            if user.room == sender.room and user.expect.pop(message_id, None) is not None:
                user.expect[message_id] = now  # at the end: the dict stays oldest first

    def by_worker(self) -> dict[str, list[str]]:
        """Worker name -> users connected to it now."""
        result: dict[str, list[str]] = {}
        for user in self.users.values():
            if user.worker is not None and user.connected_since is not None:
                result.setdefault(user.worker, []).append(user.name)
        return result

    def summary(self) -> dict[str, Any]:
        """The tally, after counting as missed what is overdue by now."""
        now = time.monotonic()
        for user in self.users.values():
            user.settle(now)
        pending = sum(len(user.expect) for user in self.users.values())
        connected = sum(1 for u in self.users.values() if u.connected_since is not None)
        return {
            **self.tally.summary(pending),
            "connected": connected,
            "rooms": self.rooms,
            "jitter": self.jitter,
        }

    async def settle(self, within: float) -> None:
        """Stop sending, and wait (at most `within` s) until every message on its way has
        arrived or counts as missed. The users stay connected."""
        self.quiet = True
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.summary()["messages_pending"]:
                return
            await asyncio.sleep(0.05)
