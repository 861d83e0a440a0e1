"""The lab socket against the real ASGI application, with a real lab host on the same loop.

Every test disconnects its communicators; labs are small (one or two workers).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.cache import SessionStore
from django.template.loader import render_to_string

from config.asgi import application
from course.models import ExperimentRecord, session_hash
from playground import consumers, labclient, labprotocol
from playground.consumers import MESSAGE_BURST, LabConsumer
from playground.labclient import alab_create
from tests.conftest import ROOT
from tests.playground.labhost.test_experiment import CONFIG as EXPERIMENT_CONFIG
from tests.playground.labhost.test_experiment import EXPERIMENT

from .conftest import (
    RunningHost,
    client_exists,
    eventually,
    gone_within,
    session_headers,
    start_runlabs,
    stop_runlabs_checked,
)

SMALL = {"mode": "stateful", "workers": 1, "users": 3, "rate": 10.0, "sticky": True}


async def _opened(path: str) -> AsyncIterator[Callable[..., WebsocketCommunicator]]:
    """Open sockets on `path` (formatted with the id it is called with); every one is
    disconnected at the end of the test."""
    opened: list[WebsocketCommunicator] = []

    def open_socket(id_: str, session_key: str | None) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(
            application, path.format(id_), headers=session_headers(session_key)
        )
        opened.append(communicator)
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[..., WebsocketCommunicator]]:
    """Lab sockets: sockets(lab_id, session_key)."""
    async for open_socket in _opened("/ws/labs/{}/"):
        yield open_socket


class Clock:
    """A clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limiter_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The lab sockets' rate limit reads this clock (time stands still unless moved)."""
    clock = Clock()
    monkeypatch.setattr(LabConsumer, "limiter_clock", staticmethod(clock))
    return clock


async def start_lab(owner: str, **config: Any) -> str:
    lab_id = uuid.uuid4().hex[:10]
    await alab_create(lab_id=lab_id, owner=owner, config={**SMALL, **config})
    return lab_id


async def watch_new_lab(
    owner_session: Any, sockets: Any, **config: Any
) -> tuple[str, WebsocketCommunicator, dict[str, Any]]:
    """A lab of a new session's own, its socket connected, and a snapshot with all workers up."""
    session_key, owner = owner_session()
    lab_id = await start_lab(owner, **config)
    socket = sockets(lab_id, session_key)
    assert (await socket.connect())[0]
    return lab_id, socket, (await snapshot_where(socket, all_up))["snapshot"]


async def snapshot_where(
    socket: WebsocketCommunicator, check: Callable[[dict[str, Any]], bool], within: int = 150
) -> dict[str, Any]:
    """Read messages until a snapshot satisfies `check` (at most `within` messages)."""
    for _ in range(within):
        message = await socket.receive_json_from(timeout=10)
        if message["type"] == "snapshot" and check(message["snapshot"]):
            return message
    raise AssertionError("no snapshot matched")


async def unmanaged_socket(lab_id: str, session_key: str) -> WebsocketCommunicator:
    """A lab socket that the test ends itself (not the `sockets` fixture, which would
    disconnect it again), connected and showing every worker up."""
    socket = WebsocketCommunicator(
        application, f"/ws/labs/{lab_id}/", headers=session_headers(session_key)
    )
    assert (await socket.connect())[0]
    await snapshot_where(socket, all_up)
    return socket


def all_up(snapshot: dict[str, Any]) -> bool:
    return bool(snapshot["workers"]) and all(w["status"] == "up" for w in snapshot["workers"])


async def error_after(socket: WebsocketCommunicator) -> dict[str, Any]:
    """The next error message, skipping the snapshots that keep streaming meanwhile."""
    for _ in range(100):
        message = await socket.receive_json_from(timeout=10)
        if message["type"] == "error":
            return message
    raise AssertionError("no error message came")


async def test_the_owner_gets_live_snapshots_rendered_as_html(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    socket = sockets(lab_id, session_key)
    connected, _ = await socket.connect()
    assert connected
    message = await snapshot_where(socket, all_up)
    assert message["snapshot"]["id"] == lab_id
    html = message["html"]
    assert 'data-worker="worker-1"' in html and 'data-status="up"' in html
    assert 'hx-swap-oob="morph"' in html
    assert 'data-metric="sessions_lost"' in html
    assert 'Kill<span class="visually-hidden"> worker-1</span>' in html
    # And it keeps coming without being asked.
    assert (await socket.receive_json_from(timeout=2))["type"] == "snapshot"


async def test_another_session_is_refused_with_4403(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    _, owner = owner_session()
    lab_id = await start_lab(owner)
    other_key, _ = owner_session()
    for session_key in (other_key, None):
        socket = sockets(lab_id, session_key)
        connected, _ = await socket.connect()
        assert connected  # accepted, then closed with a reason the page can show
        message = await socket.receive_json_from()
        assert message["type"] == "refused"
        assert message["code"] == labprotocol.CLOSE_FORBIDDEN
        assert "another browser session" in message["html"]
        assert await socket.receive_output() == {
            "type": "websocket.close",
            "code": labprotocol.CLOSE_FORBIDDEN,
        }


BAD_MESSAGES = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('"kill"', "JSON object"),
    ("{}", "Unknown action"),
    ('{"action": "explode"}', "Unknown action"),
    ('{"action": "kill"}', "needs a worker"),
    ('{"action": "kill", "worker": "worker-x"}', "needs a worker"),
    ('{"action": "kill", "worker": 1}', "needs a worker"),
    ('{"action": "reset", "worker": "worker-1"}', "Unexpected field"),
    ('{"action": "set"}', "set needs"),
    ('{"action": "set", "sticky": "yes"}', "wrong type"),
    ('{"action": "set", "colour": "red"}', "cannot change"),
    (json.dumps({"action": "reset", "pad": "x" * 5000}), "too large"),
    # Well-formed, but the lab engine says no: answered the same way.
    ('{"action": "kill", "worker": "worker-9"}', "worker-9"),
    ('{"action": "set", "rate": 100000}', "rate"),
]


async def test_each_bad_message_gets_an_error_and_the_socket_stays_open(
    labhost: RunningHost, owner_session: Any, sockets: Any, limiter_clock: Clock
) -> None:
    _, socket, _ = await watch_new_lab(owner_session, sockets)
    sticky = True
    for frame, says in BAD_MESSAGES:
        await socket.send_to(text_data=frame)
        error = await error_after(socket)
        assert says in error["message"], (frame, error["message"])
        assert 'id="lab-alert"' in error["html"]
        # Still open, still obeyed.
        sticky = not sticky
        await socket.send_json_to({"action": "set", "sticky": sticky})

        def obeyed(snapshot: dict[str, Any], want: bool = sticky) -> bool:
            return snapshot["sticky"] is want

        await snapshot_where(socket, obeyed)
        limiter_clock.now += 1  # the rate limit refills: this test is not about floods


# Frames that crashed the consumer (close 1011, a dead member left in the lab's group), and
# more of their kind: each is answered with an error, before it reaches json's recursion,
# msgpack on the Channels layer, or the lab engine.
HOSTILE_FRAMES = [
    ("[" * 2000 + "]" * 2000, "flat JSON object"),  # RecursionError in json.loads
    ('{"action": "set", "users": 99999999999999999999999999}', "users"),  # msgpack overflow
    ('{"action": "set", "users": -99999999999999999999999999}', "users"),
    ('{"action": "set", "users": ' + "9" * 4000 + "}", "at most 32 characters"),
    ('{"action": "set", "rate": 1e309}', "finite"),
    ('{"action": "set", "rate": -1e309}', "finite"),
    ('{"action": "set", "rate": NaN}', "NaN"),
    ('{"action": "set", "rate": Infinity}', "Infinity"),
    ('{"action": "set", "rate": 0}', "rate"),
    ('{"action": "set", "users": 2.5}', "wrong type"),
    ('{"action": "set", "users": true}', "wrong type"),
    ('{"action": "set", "users": [3]}', "wrong type"),
    ('{"action": "set", "sticky": {"a": {"b": 1}}}', "flat JSON object"),
    ('{"action": "set", "balancing": "\\ud800"}', "balancing"),
    ('{"action": "set", "balancing": "ROUND_ROBIN"}', "balancing"),
    ('{"action": "kill", "worker": "worker-\\u0661"}', "needs a worker"),
    ('{"action": "kill", "worker": "wörker-1"}', "needs a worker"),
    ('{"action": "k\\u0000ill"}', "Unknown action"),
    ('{"action": ["kill"]}', "Unknown action"),
    ('{"action": "kill", "worker": "worker-1", "extra": 1}', "Unexpected field"),
    ('{"action": "add_worker", "pad": "' + "é" * 2100 + '"}', "too large"),
    ("\ufeff{}", "not valid JSON"),
    (" ", "not valid JSON"),
]


async def test_hostile_frames_get_an_error_and_the_socket_obeys_afterwards(
    labhost: RunningHost, owner_session: Any, sockets: Any, limiter_clock: Clock
) -> None:
    lab_id, socket, _ = await watch_new_lab(owner_session, sockets)
    rate = 10.0
    for frame, says in HOSTILE_FRAMES:
        await socket.send_to(text_data=frame)
        error = await error_after(socket)
        assert says in error["message"], (frame[:60], error["message"])
        rate = 12.0 if rate == 10.0 else 10.0
        await socket.send_json_to({"action": "set", "rate": rate})

        def obeyed(snapshot: dict[str, Any], want: float = rate) -> bool:
            return snapshot["rate"] == want

        await snapshot_where(socket, obeyed)
        limiter_clock.now += 1
    assert len(labhost.host.labs[lab_id].viewers) == 1


async def test_a_socket_that_fails_leaves_its_group_and_the_host(
    labhost: RunningHost,
    owner_session: Any,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
) -> None:
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    # Not the `sockets` fixture: this socket ends with the consumer's exception, which
    # disconnect() would raise again.
    socket = await unmanaged_socket(lab_id, session_key)
    hosted = labhost.host.labs[lab_id]
    assert len(hosted.viewers) == 1

    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in the consumer")

    monkeypatch.setattr(labprotocol, "command_parse", broken)  # whatever the next bug is
    await socket.send_to(text_data='{"action": "reset"}')
    with pytest.raises(RuntimeError, match="a bug in the consumer"):
        for _ in range(100):  # the snapshots already on their way, then the exception
            await socket.receive_output(timeout=5)
    await eventually(lambda: not hosted.viewers, 5)
    # channels-redis keeps a group as a sorted set of channel names: none is left in it.
    group_key = f"asgi:group:{labprotocol.group_name(lab_id)}"
    assert redis.Redis.from_url(redis_url).zcard(group_key) == 0


async def test_binary_frames_and_floods_get_errors_too(
    labhost: RunningHost, owner_session: Any, sockets: Any, limiter_clock: Clock
) -> None:
    _, socket, _ = await watch_new_lab(owner_session, sockets)
    await socket.send_to(bytes_data=b'{"action": "reset"}')
    assert "binary" in (await error_after(socket))["message"]
    for _ in range(40):
        await socket.send_to(text_data="{}")
    messages: list[dict[str, Any]] = []
    while len([m for m in messages if m["type"] == "error"]) < 40:
        messages.append(await socket.receive_json_from(timeout=10))
    errors = [m["message"] for m in messages if m["type"] == "error"]
    # Time stands still: the burst (the binary frame took one) and not one message more.
    assert all("Unknown action" in e for e in errors[: MESSAGE_BURST - 1])
    assert all("Too many messages" in e for e in errors[MESSAGE_BURST - 1 :])
    await socket.send_json_to({"action": "set", "sticky": False})
    assert "Too many messages" in (await error_after(socket))["message"]
    limiter_clock.now += 0.5  # the bucket refills
    await socket.send_json_to({"action": "set", "sticky": False})
    await snapshot_where(socket, lambda s: s["sticky"] is False)


async def test_kill_through_the_socket_shows_the_worker_down_and_its_pid_gone(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    lab_id, socket, before = await watch_new_lab(owner_session, sockets, workers=2)
    pid = before["workers"][0]["pid"]
    assert pid in labhost.host.labs[lab_id].lab.pids()

    await socket.send_json_to({"action": "kill", "worker": "worker-1"})

    def worker_1_down(snapshot: dict[str, Any]) -> bool:
        return snapshot["workers"][0]["status"] == "down"

    message = await snapshot_where(socket, worker_1_down)
    assert message["snapshot"]["workers"][0]["pid"] != pid
    assert 'data-worker="worker-1" data-status="down"' in message["html"]
    assert gone_within([pid], 5) == []
    assert pid not in labhost.host.labs[lab_id].lab.pids()


async def test_a_closed_lab_tells_its_viewer_and_closes_with_4404(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    lab_id, socket, _ = await watch_new_lab(owner_session, sockets)
    await labhost.host.lab_close(hosted=labhost.host.labs[lab_id], reason="Closed by a test.")
    for _ in range(100):
        message = await socket.receive_json_from(timeout=10)
        if message["type"] != "snapshot":
            break
    assert message["type"] == "closed"
    assert "Closed by a test." in message["html"] and "Start a new lab" in message["html"]
    assert await socket.receive_output() == {
        "type": "websocket.close",
        "code": labprotocol.CLOSE_GONE,
    }


async def test_an_unknown_lab_is_gone(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    session_key, _ = owner_session()
    socket = sockets("nosuchlab1", session_key)
    assert (await socket.connect())[0]
    message = await socket.receive_json_from(timeout=5)
    assert message["type"] == "closed"
    assert await socket.receive_output() == {
        "type": "websocket.close",
        "code": labprotocol.CLOSE_GONE,
    }


async def _assert_closed_as_host_down(socket: Any, *, wait: float) -> None:
    message = await socket.receive_json_from(timeout=wait)
    assert message["type"] == "closed"
    assert "stopped answering" in message["message"]
    assert await socket.receive_output() == {
        "type": "websocket.close",
        "code": labprotocol.CLOSE_HOST_DOWN,
    }


def record_on_a_silent_host(redis_url: str, owner: str) -> str:
    """A lab in the registry whose host never answers (the record of a host just killed)."""
    lab_id = uuid.uuid4().hex[:10]
    record = {
        "owner": labprotocol.owner_digest(owner),
        "host": f"labhost-nobody-{uuid.uuid4().hex[:6]}",
        "mode": "stateful",
    }
    redis.Redis.from_url(redis_url).set(labprotocol.lab_key(lab_id), json.dumps(record), ex=30)
    return lab_id


async def test_a_silent_lab_host_is_noticed(
    owner_session: Any, sockets: Any, redis_url: str
) -> None:
    session_key, owner = owner_session()
    socket = sockets(record_on_a_silent_host(redis_url, owner), session_key)
    assert (await socket.connect())[0]
    await _assert_closed_as_host_down(socket, wait=10)


async def test_a_hung_channel_layer_is_noticed_too(
    owner_session: Any, sockets: Any, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    async def hang(*_: Any, **__: Any) -> None:
        await asyncio.Event().wait()  # a Redis that accepts the command and never answers

    monkeypatch.setattr(LabConsumer, "to_host", hang)
    session_key, owner = owner_session()
    socket = sockets(record_on_a_silent_host(redis_url, owner), session_key)
    assert (await socket.connect())[0]
    await _assert_closed_as_host_down(socket, wait=15)


async def test_a_killed_lab_host_that_make_run_restarts_means_host_stopped_not_lab_ended(
    owner_session: Any,
    sockets: Any,
    settings: Any,
    server_env: dict[str, str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the new host's answer may end the socket here, not the consumer's own patience.
    monkeypatch.setattr(consumers, "HOST_SILENT", 60.0)
    name = f"labhost-killed-{uuid.uuid4().hex[:6]}"
    settings.PLAYGROUND_FLEET = fleet = f"fleet-{name}"
    host = await asyncio.to_thread(start_runlabs, server_env, redis_url, name, fleet=fleet)
    try:
        session_key, owner = owner_session()
        lab_id = await start_lab(owner)
        socket = sockets(lab_id, session_key)
        assert (await socket.connect())[0]
        await snapshot_where(socket, all_up)
        host.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(host.process.wait, 10)
        heartbeat = labprotocol.heartbeat_key(name)
        await eventually(lambda: not client_exists(redis_url, heartbeat), 10)
        # What make run does: a new lab host under the same name, which never ran this lab.
        host = await asyncio.to_thread(start_runlabs, server_env, redis_url, name, fleet=fleet)
        message, close = await closed_because(socket)
        assert message["type"] == "closed" and "stopped answering" in message["message"]
        assert close == {"type": "websocket.close", "code": labprotocol.CLOSE_HOST_DOWN}
    finally:
        await asyncio.to_thread(stop_runlabs_checked, host)


async def test_a_lab_host_that_stops_says_why_with_4404(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    _, socket, _ = await watch_new_lab(owner_session, sockets)
    labhost.stop.set()  # SIGTERM: the host closes every lab, then withdraws its heartbeat
    message, close = await closed_because(socket)
    assert message["message"] == "The lab host stopped."
    assert close == {"type": "websocket.close", "code": labprotocol.CLOSE_GONE}


async def test_nothing_is_sent_after_the_close(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    lab_id, socket, _ = await watch_new_lab(owner_session, sockets)
    (channel,) = labhost.host.labs[lab_id].viewers
    await labhost.layer.send(channel, {"type": "lab.closed", "reason": "Closed by a test."})
    message, close = await closed_because(socket)
    assert close == {"type": "websocket.close", "code": labprotocol.CLOSE_GONE}
    # Late news for a closed socket (daphne: "Attempt to send on a closed protocol").
    await labhost.layer.send(channel, {"type": "lab.error", "message": "late"})
    await labhost.layer.send(channel, {"type": "lab.attached", "snapshot": message})
    await labhost.layer.send(channel, {"type": "lab.closed", "reason": "again"})
    assert await socket.receive_nothing(timeout=1)


async def test_a_web_process_that_shuts_down_says_so_before_the_connection_drops(
    labhost: RunningHost, owner_session: Any
) -> None:
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    # Not the `sockets` fixture: disconnect() of a cancelled application raises.
    socket = await unmanaged_socket(lab_id, session_key)
    hosted = labhost.host.labs[lab_id]
    # What daphne does to every open socket on Ctrl-C: cancel its application (then it drops
    # the connection, 1006, on which the page reconnects: no close frame, no 4xxx code).
    socket.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await socket.future
    frames = []
    while not socket.output_queue.empty():
        frames.append(socket.output_queue.get_nowait())
    last = json.loads(frames[-1]["text"])
    assert last["type"] == "error" and last["message"] == consumers.RESTARTING
    assert all(frame["type"] == "websocket.send" for frame in frames)
    await eventually(lambda: not hosted.viewers, 5)


# -- limits, kept in Redis across web processes ---------------------------------------


async def closed_because(socket: WebsocketCommunicator) -> tuple[dict[str, Any], Any]:
    """The `closed` message that ends a socket and its close frame."""
    for _ in range(100):
        message = await socket.receive_json_from(timeout=10)
        if message["type"] != "snapshot":
            return message, await socket.receive_output(timeout=5)
    raise AssertionError("the socket was not closed")


def test_the_default_limits_leave_room_for_tabs_and_a_classroom() -> None:
    assert LabConsumer.sockets_per_session >= 4
    assert LabConsumer.sockets_per_lab >= 250
    assert LabConsumer.sockets_per_process >= LabConsumer.sockets_per_lab
    contract = (ROOT / "docs" / "playground-contract.md").read_text()
    assert f"at most {LabConsumer.sockets_per_session} per browser session" in contract
    assert f"at most {LabConsumer.sockets_per_lab} per lab" in contract
    assert f"at most {LabConsumer.sockets_per_process} per web process" in contract
    assert f"{consumers.MESSAGES_PER_SECOND} a second per session" in contract


async def test_a_session_gets_a_few_sockets_and_not_one_more(
    labhost: RunningHost, owner_session: Any, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LabConsumer, "sockets_per_session", 3)
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    # One socket of this session is open in another web process: its claim is in Redis.
    other_process = await asyncio.to_thread(
        labclient.socket_claim,
        key=labprotocol.session_sockets_key(owner),
        socket="another-web-process!abc",
        limit=3,
        now=time.time(),
        lease=30,
    )
    assert other_process
    first, second = sockets(lab_id, session_key), sockets(lab_id, session_key)
    for socket in (first, second):
        assert (await socket.connect())[0]
        await snapshot_where(socket, all_up)
    third = sockets(lab_id, session_key)
    assert (await third.connect())[0]
    message, close = await closed_because(third)
    assert message["type"] == "closed" and message["code"] == labprotocol.CLOSE_TOO_MANY
    assert "Too many lab tabs" in message["message"] and "at most 3" in message["html"]
    assert close == {"type": "websocket.close", "code": labprotocol.CLOSE_TOO_MANY}
    # A socket that closes gives its place back.
    await first.disconnect()
    fourth = sockets(lab_id, session_key)
    assert (await fourth.connect())[0]
    await snapshot_where(fourth, all_up)


async def test_a_lab_gets_so_many_viewers_and_a_process_so_many_sockets(
    labhost: RunningHost, owner_session: Any, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LabConsumer, "sockets_per_lab", 1)
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    first = sockets(lab_id, session_key)
    assert (await first.connect())[0]
    # A socket is accepted before it claims its place: wait until the first one holds it.
    await snapshot_where(first, all_up)
    second = sockets(lab_id, session_key)
    assert (await second.connect())[0]
    message, close = await closed_because(second)
    assert (
        message["code"] == labprotocol.CLOSE_TOO_MANY and "too many viewers" in message["message"]
    )

    monkeypatch.setattr(LabConsumer, "sockets_per_lab", 10)
    monkeypatch.setattr(LabConsumer, "sockets_per_process", 1)
    third = sockets(lab_id, session_key)
    assert (await third.connect())[0]
    message, close = await closed_because(third)
    assert message["code"] == labprotocol.CLOSE_TOO_MANY and "too busy" in message["message"]
    assert close == {"type": "websocket.close", "code": labprotocol.CLOSE_TOO_MANY}


async def test_the_command_rate_is_per_session_not_per_socket(
    labhost: RunningHost, owner_session: Any, sockets: Any, limiter_clock: Clock
) -> None:
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    first, second = sockets(lab_id, session_key), sockets(lab_id, session_key)
    for socket in (first, second):
        assert (await socket.connect())[0]
        await snapshot_where(socket, all_up)
    for _ in range(MESSAGE_BURST):
        await first.send_to(text_data="{}")
    for _ in range(MESSAGE_BURST):
        assert "Unknown action" in (await error_after(first))["message"]
    # The session spent its burst on the first socket: a second socket does not get another.
    await second.send_json_to({"action": "set", "sticky": False})
    assert "Too many messages" in (await error_after(second))["message"]
    limiter_clock.now += 0.5
    await second.send_json_to({"action": "set", "sticky": False})
    await snapshot_where(second, lambda s: s["sticky"] is False)


# -- one rendering of each snapshot per lab per tick, in one web process ----------------


async def test_sockets_on_one_lab_share_each_snapshots_rendering(
    labhost: RunningHost, owner_session: Any, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[str] = []

    def counted(template_name: str, *args: Any, **kwargs: Any) -> str:
        if template_name.endswith("#live"):
            renders.append(template_name)
        return render_to_string(template_name, *args, **kwargs)  # the real rendering

    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    watchers = [sockets(lab_id, session_key) for _ in range(4)]
    for socket in watchers:
        assert (await socket.connect())[0]
        await snapshot_where(socket, all_up)
    monkeypatch.setattr(consumers, "render_to_string", counted)
    frames: list[set[str]] = []
    for socket in watchers:
        seen = set()
        for _ in range(6):
            message = await socket.receive_json_from(timeout=10)
            assert message["type"] == "snapshot"
            seen.add(json.dumps(message, sort_keys=True))
        frames.append(seen)
    ticks = set().union(*frames)
    assert len(ticks) >= 6
    # Each tick rendered once for the four sockets (a tick or two may be rendered and on its
    # way, not yet read); rendering per socket would be four times as many.
    assert len(renders) <= len(ticks) + 2, (len(renders), len(ticks))
    assert frames[0] & frames[1] & frames[2] & frames[3]


async def test_a_learner_who_floods_within_the_limits_does_not_starve_another(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    """One learner trying past every limit at once (30 sockets, a command on each as fast as
    they go) while another watches their own lab: the other's updates keep coming. Measured
    against the same watcher's rate just before the flood, on the same machine and load
    (unprotected, it fell from 5 a second to 0.29): a ratio, not a timing claim."""
    flooder_key, flooder = owner_session()
    flooded_lab = await start_lab(flooder)
    _, watcher, _ = await watch_new_lab(owner_session, sockets)

    async def rate(seconds: float) -> float:
        seen, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            message = await watcher.receive_json_from(timeout=10)
            seen += message["type"] == "snapshot"
        return seen / (time.monotonic() - started)

    before = await rate(3.0)
    # More sockets than a session may have: those past the limit are closed at once.
    flood = [sockets(flooded_lab, flooder_key) for _ in range(30)]
    for socket in flood:
        await socket.connect()

    async def hammer(socket: WebsocketCommunicator, stop: asyncio.Event) -> None:
        value = 10
        while not stop.is_set():
            value = 20 if value == 10 else 10
            try:
                await socket.send_json_to({"action": "set", "rate": value})
            except Exception:  # a socket closed for being over the limit: its flood ends
                return
            await asyncio.sleep(0)

    stop = asyncio.Event()
    flooding = [asyncio.create_task(hammer(socket, stop)) for socket in flood]
    try:
        during = await rate(4.0)
    finally:
        stop.set()
        await asyncio.gather(*flooding)
    assert during >= 0.5 * before, (during, before)


# -- a lab shared with a class: watcher sockets ---------------------------------------


def watcher_session() -> str:
    """A browser session of someone in the class: no lab of its own, no owner token."""
    session = SessionStore()
    session["watching"] = True
    session.save()
    assert session.session_key is not None
    return session.session_key


@pytest.fixture
async def watchers() -> AsyncIterator[Callable[..., WebsocketCommunicator]]:
    """A class's sockets: watchers(code, session_key)."""
    async for open_socket in _opened("/ws/watch/{}/"):
        yield open_socket


async def share(record_of: str, owner: str, *, on: bool = True) -> str | None:
    record = await asyncio.to_thread(labclient.lab_get, record_of)
    assert record is not None
    return await labclient.alab_share(record=record, owner=owner, share=on)


async def test_a_class_watches_a_shared_lab_live_and_cannot_act_on_it(
    labhost: RunningHost, owner_session: Any, sockets: Any, watchers: Any
) -> None:
    session_key, owner = owner_session()
    lab_id = await start_lab(owner, workers=2)
    code = await share(lab_id, owner)
    assert code is not None
    owner_socket = sockets(lab_id, session_key)
    assert (await owner_socket.connect())[0]
    await snapshot_where(owner_socket, all_up)
    class_sockets = [watchers(labprotocol.watch_code_display(code), watcher_session())]
    class_sockets.append(watchers(code.lower(), watcher_session()))  # as typed, any case
    seen: list[str] = []
    for socket in class_sockets:
        assert (await socket.connect())[0]
        message = await snapshot_where(socket, all_up)
        seen.append(json.dumps(message))
        assert 'data-worker="worker-1"' in message["html"]
        assert 'data-metric="sessions_lost"' in message["html"]
        assert "data-command" not in message["html"]  # no control at all
    # A watcher's command is refused with a message; the lab is untouched.
    await class_sockets[0].send_json_to({"action": "kill", "worker": "worker-1"})
    assert (await error_after(class_sockets[0]))["message"] == consumers.WATCHING
    # The owner acts: every watcher sees it.
    await owner_socket.send_json_to({"action": "kill", "worker": "worker-1"})
    for socket in class_sockets:
        message = await snapshot_where(
            socket, lambda s: any(w["status"] == "down" for w in s["workers"])
        )
        seen.append(json.dumps(message))
    # Nothing a watcher received carries the owner's token.
    assert not any(owner in frame for frame in seen)


async def test_stopping_sharing_closes_the_class_sockets_with_their_own_code(
    labhost: RunningHost, owner_session: Any, watchers: Any
) -> None:
    _, owner = owner_session()
    lab_id = await start_lab(owner)
    code = await share(lab_id, owner)
    assert code is not None
    socket = watchers(code, watcher_session())
    assert (await socket.connect())[0]
    await snapshot_where(socket, all_up)
    assert await share(lab_id, owner, on=False) is None
    message, close = await closed_because(socket)
    assert message["code"] == labprotocol.CLOSE_UNSHARED == 4410
    assert message["message"] == consumers.UNSHARED
    assert close == {"type": "websocket.close", "code": labprotocol.CLOSE_UNSHARED}
    # The code is retired: a late watcher (or one whose socket came back after a drop) hears
    # the same why, not that the code never was.
    late = watchers(code, watcher_session())
    assert (await late.connect())[0]
    message, _ = await closed_because(late)
    assert message["code"] == labprotocol.CLOSE_UNSHARED
    assert message["message"] == consumers.UNSHARED


@pytest.mark.parametrize(
    ("code", "has_session", "close_code"),
    [
        ("ABCD2345", True, labprotocol.CLOSE_GONE),  # well formed, never shared
        ("not-a-code!", True, labprotocol.CLOSE_GONE),
        ("ABCD2345", False, labprotocol.CLOSE_FORBIDDEN),  # no cookies: no way to count it
    ],
    ids=["unknown", "malformed", "no session"],
)
async def test_a_watch_socket_without_a_shared_lab_is_closed_with_a_reason(
    labhost: RunningHost, watchers: Any, code: str, has_session: bool, close_code: int
) -> None:
    socket = watchers(code, watcher_session() if has_session else None)
    assert (await socket.connect())[0]
    message, close = await closed_because(socket)
    assert message["code"] == close_code and message["message"]
    assert close["code"] == close_code


async def answered_or_error(socket: WebsocketCommunicator) -> dict[str, Any]:
    for _ in range(100):
        message = await socket.receive_json_from(timeout=10)
        if message["type"] in ("answered", "error"):
            return message
    raise AssertionError("no answer came back")


async def test_the_class_answers_a_question_once_each_and_sees_the_measured_answer(
    labhost: RunningHost, owner_session: Any, sockets: Any, watchers: Any
) -> None:
    session_key, owner = owner_session()
    lab_id = await start_lab(owner, workers=2, users=6, rate=20.0)
    owner_socket = sockets(lab_id, session_key)
    assert (await owner_socket.connect())[0]
    await snapshot_where(owner_socket, all_up)
    question = {
        "action": "ask",
        "question": "How many sessions will be lost when I kill worker-1?",
        "kind": "number",
        "figure": "sessions_lost",
    }
    # Not shared yet: nobody could answer.
    await owner_socket.send_json_to(question)
    assert "Share the lab" in (await error_after(owner_socket))["message"]
    code = await share(lab_id, owner)
    assert code is not None
    await owner_socket.send_json_to(question)
    await snapshot_where(owner_socket, lambda s: (s.get("poll") or {}).get("state") == "open")

    class_sockets = [watchers(code, watcher_session()) for _ in range(3)]
    for socket in class_sockets:
        assert (await socket.connect())[0]
        message = await snapshot_where(socket, lambda s: bool(s.get("poll")))
        assert "How many sessions will be lost" in message["html"]
        assert 'id="poll-value"' not in message["html"]  # the number form is the page's own
    for socket, value in zip(class_sockets, (0, 3, 3), strict=True):
        await socket.send_json_to({"action": "answer", "value": value})
        answered = await answered_or_error(socket)
        assert answered["type"] == "answered" and "lab-poll-mine" in answered["html"]
    # One answer each, and hostile answers change nothing.
    for bad in ({"value": 4}, {"value": "3"}, {"value": 10**30}, {"value": -2}, {}):
        await class_sockets[0].send_json_to({"action": "answer", **bad})
        assert (await answered_or_error(class_sockets[0]))["type"] == "error"
    await class_sockets[1].send_json_to({"action": "answer", "value": 1e12})
    assert (await answered_or_error(class_sockets[1]))["type"] == "error"
    # The owner cannot answer for the class.
    await owner_socket.send_json_to({"action": "answer", "value": 1})
    assert "The class answers" in (await error_after(owner_socket))["message"]
    shown = await snapshot_where(owner_socket, lambda s: (s.get("poll") or {}).get("answered") == 3)
    assert (
        shown["snapshot"]["poll"]["median"] == 3 and shown["snapshot"]["poll"]["measured"] is None
    )

    await owner_socket.send_json_to({"action": "close_question"})
    # worker-1 holds sessions to lose, and the question is closed, before the kill.
    await snapshot_where(
        owner_socket,
        lambda s: s["workers"][0]["sessions"] > 0 and s["poll"]["state"] == "closed",
    )
    await owner_socket.send_json_to({"action": "kill", "worker": "worker-1"})
    for socket in (owner_socket, *class_sockets):
        # (The class's sockets have not been read for a while: many snapshots queued.)
        message = await snapshot_where(
            socket, lambda s: bool((s.get("poll") or {}).get("measured")), within=1000
        )
        poll = message["snapshot"]["poll"]
        assert poll["state"] == "closed" and poll["answered"] == 3
        # The measured number is the lab's own counter, counted since the question.
        assert 0 < poll["measured"] <= message["snapshot"]["metrics"]["sessions_lost"]
        assert "data-poll-measured" in message["html"]


@pytest.mark.django_db(transaction=True)  # the socket writes through Django's async ORM
async def test_a_finished_experiment_writes_its_outcome_on_its_record_once(
    labhost: RunningHost, owner_session: Any, sockets: Any, async_orm: None
) -> None:
    session_key, owner = owner_session()
    lab_id = uuid.uuid4().hex[:10]
    await ExperimentRecord.objects.acreate(
        lab_id=lab_id,
        lesson_slug="stateful-up-close",
        experiment_slug="kill-one",  # EXPERIMENT's slug
        session_hash=session_hash(session_key),
        prediction="1",
    )
    await alab_create(lab_id=lab_id, owner=owner, config=EXPERIMENT_CONFIG, experiment=EXPERIMENT)
    first = sockets(lab_id, session_key)
    assert (await first.connect())[0]

    def done(snapshot: dict[str, Any]) -> bool:
        return (snapshot.get("experiment") or {}).get("state") == "done"

    await snapshot_where(first, lambda s: (s.get("experiment") or {}).get("state") == "running")
    assert (await ExperimentRecord.objects.aget()).finished_at is None  # not done yet
    message = await snapshot_where(first, done)
    # The socket writes before it sends the frame: the record is there.
    record = await ExperimentRecord.objects.aget()
    assert record.finished_at is not None
    assert record.held is False  # "None are lost", and the kill lost some
    figures = {o["figure"]: o["value"] for o in message["snapshot"]["experiment"]["outcome"]}
    assert record.figures == {**figures, "measured": None}  # a choice: no measured guess
    assert record.figures["sessions_lost"] > 0

    # A later socket of the same session sees the finished run: the record stays as it was.
    second = sockets(lab_id, session_key)
    assert (await second.connect())[0]
    for _ in range(3):
        await snapshot_where(second, done)
    again = await ExperimentRecord.objects.aget()
    assert (again.finished_at, again.held, again.figures) == (
        record.finished_at,
        record.held,
        record.figures,
    )


async def test_a_snapshot_frame_carries_the_hosts_send_time(
    labhost: RunningHost, owner_session: Any, sockets: Any
) -> None:
    # A client (the watchers benchmark) measures the update lag as arrival minus sent_at.
    before = time.time()
    session_key, owner = owner_session()
    lab_id = await start_lab(owner)
    socket = sockets(lab_id, session_key)
    assert (await socket.connect())[0]
    ticks = []
    for _ in range(20):
        message = await socket.receive_json_from(timeout=10)
        if message["type"] == "snapshot" and message["sent_at"] is not None:
            ticks.append(message["sent_at"])
        if len(ticks) == 3:
            break
    assert len(ticks) == 3
    assert before <= ticks[0] < ticks[1] < ticks[2] <= time.time()
