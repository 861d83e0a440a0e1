"""The chat workload on real workers, a real balancer tunnel and real WebSockets: what a
kill does to connections, messages and history, and what jitter does to the storm."""

from __future__ import annotations

from typing import Any

import pytest

from playground.lab import Lab, LabConfig, LabError
from playground.lab.chat_users import ChatCrowd, ChatUser

from .conftest import LabFactory, eventually

CHAT = {"workload": "chat", "workers": 3, "users": 12, "rate": 20.0}


def chat(lab: Lab) -> dict[str, Any]:
    summary = lab.snapshot()["chat"]
    assert isinstance(summary, dict)
    return summary


def all_connected(lab: Lab) -> bool:
    return bool(chat(lab)["connected"] == len(lab.chat.users if lab.chat else ()))


def on_worker(lab: Lab, name: str) -> set[str]:
    assert lab.chat is not None
    return set(lab.chat.by_worker().get(name, []))


async def kill_and_wait_back(lab: Lab, name: str) -> set[str]:
    """Kill `name` once every user is connected and has seen messages; return the users
    it held, once every one of them is back."""
    assert lab.chat is not None
    users = lab.chat.users.values()
    assert await eventually(lambda: all_connected(lab), 10)
    assert await eventually(lambda: all(len(u.recent) >= 3 for u in users), 10)
    held = on_worker(lab, name)
    await lab.worker_kill(name)
    assert await eventually(lambda: chat(lab)["reconnects"] >= len(held), 15)
    assert await eventually(lambda: all_connected(lab), 10)
    return held


async def test_a_chat_kill_drops_exactly_the_connections_the_worker_held(
    make_lab: LabFactory,
) -> None:
    lab = await make_lab(mode="stateful", **CHAT)
    assert lab.chat is not None
    held = await kill_and_wait_back(lab, "worker-1")

    kill = lab.disruptions[-1]
    assert kill.connections_held == len(held) > 0  # its own /health, just before the kill
    summary = chat(lab)
    assert summary["connections_dropped"] == len(held)
    assert summary["reconnects"] == len(held)
    assert {u.name for u in lab.chat.users.values() if u.drops} == held
    assert all(u.drops == 1 for u in lab.chat.users.values() if u.name in held)
    # Stateful: a room's members share a worker, so its users moved together, to the next
    # live worker after the dead one in the balancer's order.
    assert on_worker(lab, "worker-1") == set()
    rooms = {u.room for u in lab.chat.users.values() if u.name in held}
    for room in rooms:
        assert {u.worker for u in lab.chat.users.values() if u.room == room} == {"worker-2"}
    assert summary["reconnect_p50_ms"] is not None and summary["reconnect_p95_ms"] is not None
    assert summary["reconnect_all_back_ms"] is not None and summary["reconnect_peak_per_s"] > 0
    # Each worker's count, as its health checks read it, adds up to the users again.
    assert await eventually(
        lambda: sum(w["connections"] for w in lab.snapshot()["workers"]) == CHAT["users"]
    )
    assert next(w for w in lab.snapshot()["workers"] if w["name"] == "worker-1")["connections"] == 0


async def test_stateless_chat_misses_no_message_across_a_kill(make_lab: LabFactory) -> None:
    lab = await make_lab(mode="stateless", **CHAT)
    assert lab.chat is not None
    rooms_before = {u.room for u in lab.chat.users.values()}
    held = await kill_and_wait_back(lab, "worker-1")
    await lab.chat.settle(within=8)
    assert len(rooms_before) == 3

    summary = chat(lab)
    assert summary["messages_pending"] == 0
    assert summary["messages_missed"] == 0
    assert summary["history_lost"] == 0
    assert summary["messages_delivered"] > 0
    # It could have missed some: others kept posting while they were away, and the users
    # who came back got those from the store, by the id of the last message they saw.
    assert sum(u.resumed for u in lab.chat.users.values() if u.name in held) > 0


async def test_a_graceful_stop_closes_the_workers_sockets_and_its_users_move(
    make_lab: LabFactory,
) -> None:
    lab = await make_lab(mode="stateless", **CHAT)
    assert lab.chat is not None
    users = lab.chat.users.values()
    assert await eventually(lambda: all_connected(lab), 10)
    held = on_worker(lab, "worker-2")

    await lab.worker_stop("worker-2")

    stop = lab.disruptions[-1]
    assert stop.action == "stopped" and stop.connections_held == len(held) > 0
    assert await eventually(lambda: chat(lab)["reconnects"] >= len(held), 15)
    assert await eventually(lambda: all_connected(lab), 10)
    assert {u.name for u in users if u.drops} == held
    assert on_worker(lab, "worker-2") == set()
    await lab.chat.settle(within=8)
    assert chat(lab)["messages_missed"] == 0


async def test_stateful_chat_loses_the_killed_workers_history(make_lab: LabFactory) -> None:
    lab = await make_lab(mode="stateful", **CHAT)
    assert lab.chat is not None
    held = await kill_and_wait_back(lab, "worker-1")

    assert len(held) > 0
    assert chat(lab)["history_lost"] > 0  # the rooms it held came back empty
    # Rooms on the workers that lived keep theirs: only users of worker-1's rooms lost any.
    lost = lab.chat.tally.history_lost_ids
    authors = {message_id.split(":")[0] for message_id in lost}
    held_rooms = {lab.chat.users[name].room for name in held}
    assert {lab.chat.users[a].room for a in authors} <= held_rooms


async def test_a_storm_without_jitter_peaks_higher_than_with_it(make_lab: LabFactory) -> None:
    peaks = {}
    for jitter in (False, True):
        lab = await make_lab(
            mode="stateless", workload="chat", workers=2, users=30, rate=10.0, jitter=jitter
        )
        held = await kill_and_wait_back(lab, "worker-1")
        assert len(held) >= 10
        peaks[jitter] = chat(lab)["reconnect_peak_per_s"]
        await lab.close()
    # Without jitter every dropped user comes back in the same instant; with full jitter
    # they spread over a second. The margin is wide: 2x, where about 4x is typical.
    assert peaks[False] >= 2 * peaks[True], peaks


async def test_chat_and_shop_settings_are_refused_in_the_other_workload(
    make_lab: LabFactory,
) -> None:
    bad_configs: list[dict[str, Any]] = [
        {"workload": "shop", "rooms": 3},
        {"workload": "shop", "jitter": False},
        {"workload": "chat", "handoff": True},
        {"workload": "chat", "session_ttl": 5.0},
        {"workload": "chat", "rooms": 11},
    ]
    for bad in bad_configs:
        with pytest.raises(LabError):
            LabConfig(**bad)
    lab = await make_lab(mode="stateful", workload="chat", workers=1, users=2)
    for change in ({"session_ttl": 5.0}, {"handoff": True}):
        with pytest.raises(LabError, match="shop setting"):
            await lab.set(**change)
    assert lab.config.session_ttl == LabConfig().session_ttl and not lab.config.handoff
    await lab.set(jitter=False)
    assert lab.chat is not None and lab.chat.jitter is False
    shop = await make_lab(mode="stateful", workers=1, users=1)
    with pytest.raises(LabError, match="chat setting"):
        await shop.set(jitter=False)
    assert shop.config.jitter is True


def test_history_is_asked_for_what_the_user_saw_before_it_reconnected() -> None:
    # The worker reads a room's history a moment before what to resume: a message posted
    # in between is resumed but not in that history. It was not lost; one seen before the
    # drop and missing from the history was.
    crowd = ChatCrowd(port=1, users=1, rate=1.0, rooms=1, jitter=True, resume=True)
    user = ChatUser("user-1", "room-1", crowd)
    user.recent.extend(["a:1", "b:1", "c:1"])
    seen = tuple(user.recent)
    user.received({"type": "message", "id": "d:1", "seq": "5-0"})  # resumed on reconnect

    user.check_history(["b:1", "c:1"], seen)

    assert crowd.tally.history_lost_ids == {"a:1"}
