"""A fleet of lab hosts: two real `manage.py runlabs` processes started without flags, the web
tier's placement over them, every command routed to the lab's own host, and the death of one.

Each test has a fleet of its own on the run's Redis, so the session's host takes no lab here.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from playground import labclient, labprotocol
from playground.labclient import LabRefused

from .conftest import (
    HostProcess,
    eventually,
    gone_within,
    start_runlabs,
    stop_runlabs_checked,
    wait_until,
)
from .test_consumers import all_up, snapshot_where, sockets  # noqa: F401 (a fixture)

TINY = {"mode": "stateful", "workers": 1, "users": 2, "rate": 5.0, "sticky": True}


@pytest.fixture
def fleet(settings: Any) -> str:
    settings.PLAYGROUND_FLEET = name = f"fleet-test-{uuid.uuid4().hex[:8]}"
    return name


@pytest.fixture
def two_hosts(
    server_env: dict[str, str], redis_url: str, fleet: str
) -> Iterator[list[HostProcess]]:
    """Two lab hosts of 2 labs each, started as a school would: no --name."""
    hosts = [start_runlabs(server_env, redis_url, fleet=fleet, args=("--max-labs", "2"))]
    try:
        hosts.append(start_runlabs(server_env, redis_url, fleet=fleet, args=("--max-labs", "2")))
        yield hosts
    finally:
        for host in hosts:
            if host.process.poll() is None:
                stop_runlabs_checked(host)


def create(owner: str, address: str) -> tuple[str, str]:
    """Start a tiny lab through the web tier's placement: (lab id, the host it is on)."""
    lab_id = uuid.uuid4().hex[:10]
    host = labclient.lab_create(lab_id=lab_id, owner=owner, config=TINY, address=address)
    return lab_id, host


async def test_labs_are_placed_on_the_least_loaded_host_and_driven_there(
    two_hosts: list[HostProcess],
    owner_session: Any,
    sockets: Any,  # noqa: F811
) -> None:
    first, second = two_hosts
    assert first.name != second.name  # unique default names: hostname and pid
    assert {h.name for h in await asyncio.to_thread(labclient.fleet)} == {first.name, second.name}
    session_key, owner = owner_session()
    placed = [
        await asyncio.to_thread(create, owner if n == 0 else uuid.uuid4().hex, f"192.0.2.{n}")
        for n in range(4)
    ]
    # Least loaded first: the 4 places of the fleet fill 2 and 2.
    assert Counter(host for _, host in placed) == {first.name: 2, second.name: 2}
    for lab_id, name in placed:
        record = await asyncio.to_thread(labclient.lab_get, lab_id)
        assert record is not None and record.host == name
    # The fleet's capacity is the sum of its hosts': a fifth lab has no place.
    with pytest.raises(LabRefused, match=r"Every lab host is full \(4 labs on 2 hosts\)"):
        await asyncio.to_thread(create, uuid.uuid4().hex, "192.0.2.9")

    # The socket sends its attach and commands to the lab's own host: the workers it shows
    # are that host's processes, and a kill from the page kills one of them.
    lab_id, on = placed[0]
    host, other = (first, second) if on == first.name else (second, first)
    socket = sockets(lab_id, session_key)
    assert (await socket.connect())[0]
    snapshot = (await snapshot_where(socket, all_up))["snapshot"]
    pid = snapshot["workers"][0]["pid"]
    assert pid in {p.pid for p in host.tree()}
    assert pid not in {p.pid for p in other.tree()}
    await socket.send_json_to({"action": "kill", "worker": "worker-1"})
    await snapshot_where(
        socket, lambda s: s["workers"][0]["status"] == "down" or s["workers"][0]["pid"] != pid
    )
    assert gone_within([pid], 5) == []


async def test_a_killed_host_ends_only_its_own_labs_and_leaves_no_process(
    two_hosts: list[HostProcess],
    owner_session: Any,
    sockets: Any,  # noqa: F811
) -> None:
    first, second = two_hosts
    watched: dict[str, Any] = {}
    for n in range(4):
        session_key, owner = owner_session()
        lab_id = uuid.uuid4().hex[:10]
        # In this loop (the sockets' too): one channel layer serves one event loop at a time.
        host = await labclient.alab_create(
            lab_id=lab_id, owner=owner, config=TINY, address=f"192.0.2.{n}"
        )
        if host not in watched:  # one socket on a lab of each host
            socket = sockets(lab_id, session_key)
            assert (await socket.connect())[0]
            await snapshot_where(socket, all_up)
            watched[host] = (lab_id, socket)
    assert set(watched) == {first.name, second.name}
    # Its two labs' worker processes (the unwatched lab may still be starting its own).
    doomed = await eventually(lambda: at_least(2, first.tree()), 20)

    first.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.process.wait, 10)

    # Its lab's page is told the host stopped (4503); the other host's lab streams on.
    _, gone = watched[first.name]
    message = await _first_not_snapshot(gone)
    assert message["type"] == "closed" and "stopped answering" in message["message"]
    assert await gone.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": labprotocol.CLOSE_HOST_DOWN,
    }
    lab_id, alive = watched[second.name]
    for _ in range(3):
        assert (await alive.receive_json_from(timeout=5))["type"] == "snapshot"
    assert await asyncio.to_thread(gone_within, [p.pid for p in doomed], 10) == [], (
        "processes of a SIGKILLed lab host outlived it"
    )
    # The registry forgets its labs and the fleet its name; the other's stay.
    await eventually(lambda: first.lab_ids() == [], 15)
    assert len(second.lab_ids()) == 2
    assert [h.name for h in await asyncio.to_thread(labclient.fleet)] == [second.name]
    assert await asyncio.to_thread(labclient.lab_get, lab_id) is not None


def at_least(count: int, processes: list[Any]) -> list[Any] | None:
    return processes if len(processes) >= count else None


async def _first_not_snapshot(socket: Any) -> dict[str, Any]:
    for _ in range(200):
        message: dict[str, Any] = await socket.receive_json_from(timeout=10)
        if message["type"] != "snapshot":
            return message
    raise AssertionError("the socket kept streaming")


def test_sigterm_with_drain_takes_no_new_lab_and_closes_its_own_on_the_second(
    server_env: dict[str, str], redis_url: str, fleet: str
) -> None:
    draining = start_runlabs(server_env, redis_url, fleet=fleet, args=("--drain", "60"))
    other: HostProcess | None = None
    try:
        lab_id, host = create(uuid.uuid4().hex, "192.0.2.1")
        assert host == draining.name
        wait_until(lambda: len(draining.tree()) >= 1, 20)
        tree = [p.pid for p in draining.tree()]
        draining.process.send_signal(signal.SIGTERM)
        # It takes no new lab at once, and runs its own: a new lab goes elsewhere.
        wait_until(lambda: [h.accepting for h in labclient.fleet()] == [False], 5)
        with pytest.raises(LabRefused, match="Every lab host is restarting"):
            create(uuid.uuid4().hex, "192.0.2.2")
        other = start_runlabs(server_env, redis_url, fleet=fleet)
        assert create(uuid.uuid4().hex, "192.0.2.3")[1] == other.name
        assert draining.process.poll() is None and labclient.lab_get(lab_id) is not None
        # The second signal: close the lab now, exit cleanly, leave nothing behind.
        draining.process.send_signal(signal.SIGTERM)
        assert draining.process.wait(timeout=30) == 0
        assert gone_within(tree, 5) == []
        assert labclient.lab_get(lab_id) is None
        assert [h.name for h in labclient.fleet()] == [other.name]
    finally:
        for host_process in (draining, other):
            if host_process is not None and host_process.process.poll() is None:
                stop_runlabs_checked(host_process)
