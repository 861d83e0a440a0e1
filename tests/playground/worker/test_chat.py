"""A chat worker's rooms over real WebSockets: in its memory (stateful) or in a Redis
Stream (stateless), its handshake's work within its capacity, and its drain."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from typing import Any

import pytest

from playground.lab.websocket import HandshakeRefused, WebSocket
from tests.playground.worker.conftest import Worker


async def join(worker: Worker, room: str, user: str, last: str = "") -> tuple[WebSocket, Any]:
    """Connect and read up to `ready`: (socket, [resumed messages..., ready])."""
    query = f"?user={user}" + (f"&last={last}" if last else "")
    async with asyncio.timeout(5):
        ws = await WebSocket.connect("127.0.0.1", worker.port, f"/chat/{room}{query}")
        frames = []
        while True:
            text = await ws.receive()
            assert text is not None, "closed before ready"
            frames.append(json.loads(text))
            if frames[-1]["type"] == "ready":
                return ws, frames


async def next_frame(ws: WebSocket) -> dict[str, Any]:
    async with asyncio.timeout(5):
        text = await ws.receive()
    assert text is not None, f"closed (code {ws.close_code})"
    frame = json.loads(text)
    assert isinstance(frame, dict)
    return frame


async def say(ws: WebSocket, message_id: str, text: str = "hi") -> None:
    await ws.send_text(json.dumps({"type": "send", "id": message_id, "text": text}))


def chat_worker(start: Callable[..., Worker], mode: str, redis_url: str, *extra: str) -> Worker:
    return start(
        "--name",
        "worker-3",
        "--mode",
        mode,
        "--workload",
        "chat",
        "--redis-url",
        redis_url,
        "--prefix",
        f"test:chat:{mode}:{id(start)}:",
        *extra,
    )


async def test_stateful_room_fans_out_and_keeps_history_in_memory(
    start_worker: Callable[..., Worker], redis_url: str
) -> None:
    worker = chat_worker(start_worker, "stateful", redis_url)
    alice, frames = await join(worker, "lobby", "alice")
    assert frames == [
        {
            "type": "ready",
            "worker": "worker-3",
            "room": "lobby",
            "history": [],
            "last": f"{worker.process.pid}-0",
        }
    ]
    bob, _ = await join(worker, "lobby", "bob")
    other, _ = await join(worker, "garden", "carol")
    try:
        await say(alice, "alice:1", "hello")
        for ws in (alice, bob):  # the sender's copy is its acknowledgement
            frame = await next_frame(ws)
            assert frame["id"] == "alice:1" and frame["from"] == "alice"
            assert frame["text"] == "hello" and frame["room"] == "lobby"
        assert worker.health()["connections"] == 3
        # A newcomer is shown the room's history; another room saw nothing of it.
        dave, frames = await join(worker, "lobby", "dave")
        assert frames[-1]["history"] == ["alice:1"]
        await say(other, "carol:1")
        assert (await next_frame(other))["id"] == "carol:1"
        # Bad input is answered on the socket, which stays open.
        await alice.send_text("not json")
        assert (await next_frame(alice))["type"] == "error"
        await alice.send_text(json.dumps({"type": "send", "id": "bad id!", "text": "x"}))
        assert (await next_frame(alice))["type"] == "error"
        dave.close()
    finally:
        for ws in (alice, bob, other):
            ws.close()
    status, _, _ = worker.call("GET", "/health")
    assert status == 200


async def test_bad_upgrades_are_refused_over_http(
    start_worker: Callable[..., Worker], redis_url: str
) -> None:
    worker = chat_worker(start_worker, "stateful", redis_url)
    with pytest.raises(HandshakeRefused) as refused:
        await WebSocket.connect("127.0.0.1", worker.port, "/chat/no%20such%20room")
    assert refused.value.status == 404
    # A plain GET of a chat URL is not an upgrade: the shop's 404.
    assert worker.call("GET", "/chat/lobby")[0] == 404
    conn = worker.connect()
    try:
        upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
        conn.request("GET", "/chat/lobby", headers=upgrade)
        response = conn.getresponse()
        response.read()
        assert response.status == 400  # no Sec-WebSocket-Key
    finally:
        conn.close()


async def test_stateless_rooms_are_shared_across_workers_and_resumed_by_last_id(
    start_worker: Callable[..., Worker], redis_url: str
) -> None:
    prefix = f"test:chat:shared:{id(start_worker)}:"
    args = ("--mode", "stateless", "--workload", "chat", "--redis-url", redis_url)
    one = start_worker("--name", "worker-1", *args, "--prefix", prefix)
    two = start_worker("--name", "worker-2", *args, "--prefix", prefix)
    alice, _ = await join(one, "lobby", "alice")
    bob, _ = await join(two, "lobby", "bob")
    try:
        await say(alice, "alice:1")
        assert (await next_frame(bob))["id"] == "alice:1"  # across workers, through Redis
        first = await next_frame(alice)
        # Bob goes away; two messages are posted; he comes back with his last-seen id.
        bob.close()
        await say(alice, "alice:2")
        await say(alice, "alice:3")
        assert (await next_frame(alice))["id"] == "alice:2"
        assert (await next_frame(alice))["id"] == "alice:3"
        bob, frames = await join(one, "lobby", "bob", last=first["seq"])
        assert [f["id"] for f in frames[:-1]] == ["alice:2", "alice:3"]
        assert frames[-1]["history"] == ["alice:1", "alice:2", "alice:3"]
        await say(alice, "alice:4")
        assert (await next_frame(bob))["id"] == "alice:4"
    finally:
        alice.close()
        bob.close()


async def test_a_connect_waits_for_a_slot_and_a_drain_closes_sockets(
    start_worker: Callable[..., Worker], redis_url: str
) -> None:
    worker = chat_worker(
        start_worker, "stateful", redis_url, "--work-ms", "150", "--concurrency", "1"
    )
    joins = [asyncio.create_task(join(worker, "lobby", f"u{n}")) for n in range(4)]
    queued = 0
    while not all(j.done() for j in joins):
        queued = max(queued, (await asyncio.to_thread(worker.health))["queue"])
        await asyncio.sleep(0.02)
    sockets = [j.result()[0] for j in joins]
    assert queued >= 1  # four handshakes, one slot: the others waited in the queue
    assert worker.health()["connections"] == 4
    worker.process.send_signal(signal.SIGTERM)
    for ws in sockets:
        async with asyncio.timeout(5):
            assert await ws.receive() is None
        assert ws.close_code == 1001  # going away: the client reconnects elsewhere
    assert await asyncio.to_thread(worker.process.wait, 5) == 0
