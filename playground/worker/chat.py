"""A chat worker's rooms: WebSocket connections at `GET /chat/<room>?user=U&last=ID`.

Stateful, a room (its members and its recent history) lives in this process's memory, so
every member of a room must be connected to this worker; stateless, a room is a Redis
Stream in the lab's store (XADD to post, XREAD BLOCK from a last-seen id to receive), so
members on any worker share it and a member that comes back with the id of the last
message it saw misses nothing. A (re)connect holds one of the worker's slots for its work
(authentication) and the room's history, like a request.

The one module of the worker that is not standard library only: WebSocket framing is
wsproto's (a small, sans-I/O protocol library), and only chat workers import it.

Frames, all JSON text: the server sends the messages it resumes, then
{"type": "ready", "worker", "room", "history": [ids of the room's last messages], "last":
the seq to resume from}, then
{"type": "message", "room", "id", "seq", "from", "text"} for every message posted to the
room (the sender's own too: that is its acknowledgement); a client sends
{"type": "send", "id": "<unique>", "text": "..."}; a bad frame is answered with
{"type": "error", "error": "..."}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections import deque
from typing import TYPE_CHECKING, Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError

from .capacity import Capacity
from .resp import RedisClient, RedisError
from .shop import HttpError

if TYPE_CHECKING:
    from .server import HttpConnection, Server

HISTORY = 100  # messages of a room a (re)connecting member is shown
STREAM_MAXLEN = 1000  # stateless: a room's stream keeps about this many messages
RESUME_MAX = 1000  # stateless: at most this many missed messages are resumed
READ_BLOCK_MS = 500  # under resp.REDIS_TIMEOUT (1 s): a blocking read must answer in time
MAX_TEXT = 1000
ROOM = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_:.-]{1,80}$")


class ChatSocket(asyncio.Protocol):
    """One open WebSocket: a member of one room. Takes the connection over from the HTTP
    server after the handshake (transport.set_protocol)."""

    def __init__(
        self, chat: Chat, transport: asyncio.Transport, ws: WSConnection, room: str, user: str
    ) -> None:
        self.chat = chat
        self.transport = transport
        self.ws = ws
        self.room = room
        self.user = user
        self.closed = False
        self.reader: asyncio.Task[None] | None = None  # stateless: its XREAD loop

    @property
    def idle(self) -> bool:
        """A draining server closes open sockets (with 1001, going away) at once."""
        return True

    def data_received(self, data: bytes) -> None:
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self.received(str(event.data))
                elif isinstance(event, Ping):
                    self.transport.write(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(ProtocolError):
                        self.transport.write(self.ws.send(event.response()))
                    self.transport.close()
        except ProtocolError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.chat.leave(self)

    def received(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            self.send_json({"type": "error", "error": "a frame must be JSON"})
            return
        if not isinstance(data, dict) or data.get("type") != "send":
            self.send_json({"type": "error", "error": 'send {"type": "send", "id", "text"}'})
            return
        message_id, body = data.get("id"), data.get("text")
        if not isinstance(message_id, str) or not MESSAGE_ID.match(message_id):
            self.send_json({"type": "error", "error": "id: 1 to 80 letters, digits, _:.-"})
            return
        if not isinstance(body, str) or len(body) > MAX_TEXT:
            self.send_json({"type": "error", "error": f"text: at most {MAX_TEXT} characters"})
            return
        self.chat.post(self, message_id, body)

    def send_json(self, data: dict[str, Any]) -> None:
        if not self.closed:
            self.transport.write(self.ws.send(TextMessage(data=json.dumps(data))))

    def close(self, code: int = 1001, reason: str = "going away") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ProtocolError):
            self.transport.write(self.ws.send(CloseConnection(code=code, reason=reason)))
        self.transport.close()


class Chat:
    """The rooms of one worker, in memory (stateful) or in the store (stateless)."""

    def __init__(
        self, *, name: str, mode: str, capacity: Capacity, redis_url: str, prefix: str
    ) -> None:
        self.name = name
        self.mode = mode
        self.capacity = capacity
        self.prefix = prefix
        self.epoch = str(os.getpid())  # stateful message seqs are "<pid>-<n>": this memory's
        self.sockets: set[ChatSocket] = set()
        self.server: Server | None = None
        # Stateful: room -> members, history, next number.
        self.members: dict[str, set[ChatSocket]] = {}
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self.numbers: dict[str, int] = {}
        self.redis: RedisClient | None = None
        if mode == "stateless":
            if not redis_url:
                raise SystemExit("worker: stateless chat needs --redis-url")
            self.redis = RedisClient(redis_url)
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        return len(self.sockets)

    def key(self, room: str) -> str:
        return f"{self.prefix}chat:{room}"

    # -- joining --

    async def accept(self, http: HttpConnection, target: str, headers: dict[str, str]) -> None:
        """Answer an upgrade on `http`: the work of a (re)connect in one of the worker's
        slots, then the 101, the resumed messages and `ready`; the connection is then a
        ChatSocket's. HttpError when it cannot be accepted (answered as HTTP)."""
        path, _, query = target.partition("?")
        room = path[len("/chat/") :]
        if not ROOM.match(room):
            raise HttpError(404, "no such room: /chat/<room>, 1 to 40 letters, digits, _-")
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        user = params.get("user", "anonymous")[:64]
        last = params.get("last", "")
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()], target
            )
            events = list(ws.events())
        except ProtocolError as exc:
            raise HttpError(400, f"not a WebSocket handshake: {exc}") from exc
        if len(events) != 1 or not isinstance(events[0], Request):
            raise HttpError(400, "not a WebSocket handshake")
        if http.server.draining:
            raise HttpError(503, "this worker is shutting down")
        async with self.capacity.slot():
            await self.capacity.work()  # authentication: a real wait, as a request's work
            try:
                backlog, history, position = await self.catch_up(room, last)
            except RedisError as exc:
                raise HttpError(503, str(exc)) from exc
        if http.server.draining:
            raise HttpError(503, "this worker is shutting down")
        transport = http.transport
        if http.closed or transport is None or transport.is_closing():
            return  # the client gave up while it waited
        sock = ChatSocket(self, transport, ws, room, user)
        http.hand_over(sock)
        self.sockets.add(sock)
        transport.write(ws.send(AcceptConnection()))
        for message in backlog:
            sock.send_json(message)
        if self.redis is None:
            # Stateful: history and membership change together, with no wait between.
            history = [m["id"] for m in self.history.get(room, ())][-HISTORY:]
            position = f"{self.epoch}-{self.numbers.get(room, 0)}"
            self.members.setdefault(room, set()).add(sock)
        ready = {"worker": self.name, "room": room, "history": history, "last": position}
        sock.send_json({"type": "ready", **ready})
        if self.redis is not None:
            sock.reader = asyncio.get_running_loop().create_task(self.read(sock, position))
        leftover = bytes(http.buffer)
        http.buffer.clear()
        if leftover:
            sock.data_received(leftover)

    async def catch_up(self, room: str, last: str) -> tuple[list[dict[str, Any]], list[str], str]:
        """(messages after `last` to resume, ids of the room's history, where to read on)."""
        backlog: list[dict[str, Any]] = []
        if self.redis is None:
            epoch, _, number = last.partition("-")
            if epoch == self.epoch and number.isdigit():
                backlog = [
                    m
                    for m in self.history.get(room, ())
                    if int(m["seq"].partition("-")[2]) > int(number)
                ]
            return backlog, [], ""
        key = self.key(room)
        newest = await self.redis.command("XREVRANGE", key, "+", "-", "COUNT", str(HISTORY))
        history = [self.entry(room, item) for item in reversed(newest or [])]
        position = history[-1]["seq"] if history else "0-0"
        if re.match(r"^\d+-\d+$", last):
            missed = await self.redis.command(
                "XRANGE", key, f"({last}", "+", "COUNT", str(RESUME_MAX)
            )
            backlog = [self.entry(room, item) for item in missed or []]
            position = backlog[-1]["seq"] if backlog else last
        return backlog, [m["id"] for m in history], position

    def leave(self, sock: ChatSocket) -> None:
        self.sockets.discard(sock)
        members = self.members.get(sock.room)
        if members is not None:
            members.discard(sock)
        if sock.reader is not None:
            sock.reader.cancel()
        if self.server is not None:
            self.server.gone(sock)

    # -- messages --

    def post(self, sock: ChatSocket, message_id: str, text: str) -> None:
        if self.redis is None:
            number = self.numbers.get(sock.room, 0) + 1
            self.numbers[sock.room] = number
            message = {
                "type": "message",
                "room": sock.room,
                "id": message_id,
                "seq": f"{self.epoch}-{number}",
                "from": sock.user,
                "text": text,
            }
            self.history.setdefault(sock.room, deque(maxlen=HISTORY)).append(message)
            for member in list(self.members.get(sock.room, ())):
                member.send_json(message)
            return
        task = asyncio.get_running_loop().create_task(self.add(sock, message_id, text))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def add(self, sock: ChatSocket, message_id: str, text: str) -> None:
        assert self.redis is not None
        fields = ("id", message_id, "from", sock.user, "text", text)
        try:
            await self.redis.command(
                "XADD", self.key(sock.room), "MAXLEN", "~", str(STREAM_MAXLEN), "*", *fields
            )
        except RedisError as exc:
            sock.send_json({"type": "error", "id": message_id, "error": str(exc)})

    async def read(self, sock: ChatSocket, position: str) -> None:
        """Stateless: this member's own blocking read of its room's stream."""
        assert self.redis is not None
        key = self.key(sock.room)
        try:
            while not sock.closed:
                reply = await self.redis.command(
                    "XREAD", "BLOCK", str(READ_BLOCK_MS), "COUNT", "100", "STREAMS", key, position
                )
                for _, items in reply or []:
                    for item in items:
                        message = self.entry(sock.room, item)
                        position = message["seq"]
                        sock.send_json(message)
        except RedisError:
            sock.close(1011, "the store is unavailable")
        except Exception as exc:  # a bug must cost one connection, not the worker
            print(f"worker {self.name}: chat reader: {exc!r}", file=sys.stderr)
            sock.close(1011, "internal error")

    @staticmethod
    def entry(room: str, item: list[Any]) -> dict[str, Any]:
        """A stream entry [id, [field, value, ...]] as a message frame."""
        seq, flat = item
        fields = {
            flat[i].decode(errors="replace"): flat[i + 1].decode(errors="replace")
            for i in range(0, len(flat) - 1, 2)
        }
        return {
            "type": "message",
            "room": room,
            "id": fields.get("id", ""),
            "seq": seq.decode(),
            "from": fields.get("from", ""),
            "text": fields.get("text", ""),
        }

    async def close(self) -> None:
        for sock in list(self.sockets):
            sock.close()
        for task in list(self.tasks):
            task.cancel()
        if self.redis is not None:
            await self.redis.close()
