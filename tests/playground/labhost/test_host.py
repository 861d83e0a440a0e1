"""The lab host over the real Channels layer: creation, ownership, limits, closing, no orphans.

Each in-process host serves a channel name of its own; the web side here is a second
channels-redis layer, as a web process would be. Labs are small (one or two workers).
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest
import redis
import redis.asyncio
from channels_redis.core import RedisChannelLayer

from playground import labprotocol
from playground.labhost.host import HostAlreadyRunning, LabHost
from playground.labhost.limits import HostLimits
from tests.playground.conftest import (
    OwnRedis,
    RunningHost,
    _sync_redis,
    alive,
    client_exists,
    eventually,
    gone_within,
    start_runlabs,
    stop_process,
)

SMALL = {"mode": "stateful", "workers": 1, "users": 3, "rate": 10.0, "sticky": True}


@pytest.fixture
async def web(redis_url: str) -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=[redis_url], expiry=30)
    yield layer
    await layer.close_pools()


async def ask(web: RedisChannelLayer, host: str, type_: str, **fields: Any) -> dict[str, Any]:
    reply = await web.new_channel()
    await web.send(host, {"type": type_, "reply_channel": reply, **fields})
    async with asyncio.timeout(15):
        return await web.receive(reply)


async def create(
    web: RedisChannelLayer, host: str, *, owner: str, client: str | None = None, **config: Any
) -> tuple[str, dict[str, Any]]:
    lab_id = uuid.uuid4().hex[:10]
    extra = {} if client is None else {"client": client}
    reply = await ask(
        web, host, "lab.create", lab_id=lab_id, owner=owner, config={**SMALL, **config}, **extra
    )
    return lab_id, reply


async def started(running: RunningHost, lab_id: str) -> list[int]:
    """Wait for the lab's workers to be up; return its pids."""

    def up() -> bool:
        hosted = running.host.labs.get(lab_id)
        if hosted is None or hosted.starter is None or not hosted.starter.done():
            return False
        workers = hosted.lab.snapshot()["workers"]
        return bool(workers) and all(w["status"] == "up" for w in workers)

    await eventually(up, 30)
    return running.host.labs[lab_id].lab.pids()


async def next_of(web: RedisChannelLayer, channel: str, type_: str) -> dict[str, Any]:
    while True:
        async with asyncio.timeout(15):
            message = await web.receive(channel)
        if message["type"] == type_:
            return message


async def test_create_registers_the_lab_under_a_digest_of_its_owner(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    owner = uuid.uuid4().hex
    lab_id, reply = await create(web, labhost.name, owner=owner)
    assert reply == {"type": "lab.created", "lab_id": lab_id}
    record = json.loads(await labhost.client.get(labprotocol.lab_key(lab_id)))
    assert record["owner"] == labprotocol.owner_digest(owner) != owner
    assert record["mode"] == "stateful"
    pids = await started(labhost, lab_id)
    assert pids and all(alive(pid) for pid in pids)
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    assert set(pids) <= children  # real processes, started by this host


async def test_invalid_settings_are_refused_with_the_engines_message(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    lab_id, reply = await create(web, labhost.name, owner="o", workers=99)
    assert reply["type"] == "lab.error"
    assert reply["code"] == 400
    assert "workers" in reply["message"]
    assert lab_id not in labhost.host.labs


async def test_attach_by_the_owner_gets_a_snapshot_and_then_a_stream(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    owner = uuid.uuid4().hex
    lab_id, _ = await create(web, labhost.name, owner=owner)
    await started(labhost, lab_id)
    viewer = await web.new_channel()
    await web.send(
        labhost.name,
        {"type": "lab.attach", "lab_id": lab_id, "owner": owner, "reply_channel": viewer},
    )
    attached = await next_of(web, viewer, "lab.attached")
    assert attached["snapshot"]["id"] == lab_id
    assert [w["name"] for w in attached["snapshot"]["workers"]] == ["worker-1"]
    await web.group_add(labprotocol.group_name(lab_id), viewer)
    # Nobody asks again: the host keeps pushing (each wait is bounded by next_of), and
    # each push is a new snapshot, not the same one again. How many a second is a figure
    # for the benchmarks (bench/labs.py), not a claim for a unit test.
    pushed = [await next_of(web, viewer, "lab.snapshot") for _ in range(5)]
    for message in pushed:
        # The host's wall clock when it took the snapshot: the update lag is measured from it.
        assert message["sent_at"] <= time.time() < message["sent_at"] + 5
    uptimes = [message["snapshot"]["uptime"] for message in pushed]
    assert uptimes == sorted(set(uptimes))  # five distinct moments, in order


async def test_attach_and_commands_from_another_owner_are_refused(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    lab_id, _ = await create(web, labhost.name, owner="the-owner")
    pids = await started(labhost, lab_id)
    for type_, extra in [
        ("lab.attach", {}),
        ("lab.command", {"action": "kill", "worker": "worker-1"}),
    ]:
        reply = await ask(web, labhost.name, type_, lab_id=lab_id, owner="someone-else", **extra)
        assert reply["type"] == "lab.refused"
        assert reply["code"] == labprotocol.CLOSE_FORBIDDEN
    assert all(alive(pid) for pid in pids)
    assert labhost.host.labs[lab_id].viewers == {}


async def test_kill_is_pushed_to_viewers_at_once(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    owner = uuid.uuid4().hex
    lab_id, _ = await create(web, labhost.name, owner=owner)
    [pid] = await started(labhost, lab_id)
    viewer = await web.new_channel()
    await web.send(
        labhost.name,
        {"type": "lab.attach", "lab_id": lab_id, "owner": owner, "reply_channel": viewer},
    )
    await next_of(web, viewer, "lab.attached")
    await web.group_add(labprotocol.group_name(lab_id), viewer)
    sent = time.monotonic()
    await web.send(
        labhost.name,
        {
            "type": "lab.command",
            "lab_id": lab_id,
            "owner": owner,
            "action": "kill",
            "worker": "worker-1",
            "reply_channel": viewer,
        },
    )
    while True:
        snapshot = (await next_of(web, viewer, "lab.snapshot"))["snapshot"]
        if snapshot["workers"][0]["status"] == "down":
            break
    print(f"kill visible to a viewer after {(time.monotonic() - sent) * 1000:.0f} ms")
    assert snapshot["workers"][0]["pid"] in (None, pid)
    assert gone_within([pid], 5) == []


async def test_a_third_lab_of_one_owner_closes_the_oldest(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    owner = uuid.uuid4().hex
    first, _ = await create(web, labhost.name, owner=owner)
    watcher = await web.new_channel()
    await web.group_add(labprotocol.group_name(first), watcher)
    first_pids = await started(labhost, first)
    second, _ = await create(web, labhost.name, owner=owner)
    third, reply = await create(web, labhost.name, owner=owner)
    assert reply["type"] == "lab.created"
    closed = await next_of(web, watcher, "lab.closed")
    assert "newer lab" in closed["reason"]
    assert set(labhost.host.labs) == {second, third}
    assert await labhost.client.exists(labprotocol.lab_key(first)) == 0
    assert gone_within(first_pids, 5) == []


async def test_a_full_host_refuses_new_labs(start_labhost: Any, web: RedisChannelLayer) -> None:
    running = await start_labhost(limits=HostLimits(max_labs=1))
    _, reply = await create(web, running.name, owner="a")
    assert reply["type"] == "lab.created"
    lab_id, reply = await create(web, running.name, owner="b")
    assert reply["type"] == "lab.error"
    assert reply["code"] == 503
    assert "full" in reply["message"]
    assert lab_id not in running.host.labs


async def test_a_lab_nobody_watches_is_closed(start_labhost: Any, web: RedisChannelLayer) -> None:
    running = await start_labhost(limits=HostLimits(idle_timeout=1.0))
    lab_id, _ = await create(web, running.name, owner="a")
    pids = await started(running, lab_id)
    await eventually(lambda: lab_id not in running.host.labs, 15)
    assert gone_within(pids, 5) == []

    async def unregistered() -> bool:  # just after the host lets the lab go
        return await running.client.exists(labprotocol.lab_key(lab_id)) == 0

    await eventually(unregistered, 5)


async def test_a_lab_is_closed_at_its_maximum_lifetime_even_when_watched(
    start_labhost: Any, web: RedisChannelLayer
) -> None:
    running = await start_labhost(limits=HostLimits(max_lifetime=2.0))
    lab_id, _ = await create(web, running.name, owner="a")
    viewer = await web.new_channel()
    await web.group_add(labprotocol.group_name(lab_id), viewer)
    await started(running, lab_id)
    await ask(web, running.name, "lab.attach", lab_id=lab_id, owner="a")
    closed = await next_of(web, viewer, "lab.closed")
    assert "limit" in closed["reason"]


async def test_stopping_the_host_closes_every_lab_and_withdraws_the_heartbeat(
    start_labhost: Any, web: RedisChannelLayer
) -> None:
    running = await start_labhost()
    first, _ = await create(web, running.name, owner="a")
    second, _ = await create(web, running.name, owner="b")
    watcher = await web.new_channel()
    await web.group_add(labprotocol.group_name(first), watcher)
    pids = await started(running, first) + await started(running, second)
    running.stop.set()
    async with asyncio.timeout(30):
        await running.task
    assert gone_within(pids, 5) == []
    assert (await next_of(web, watcher, "lab.closed"))["reason"] == "The lab host stopped."
    assert await running.client.exists(labprotocol.heartbeat_key(running.name)) == 0
    assert await running.client.exists(labprotocol.lab_key(first), labprotocol.lab_key(second)) == 0


async def test_a_second_host_cannot_take_over_a_live_hosts_name(
    labhost: RunningHost, redis_url: str
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    layer = RedisChannelLayer(hosts=[redis_url])
    second = LabHost(layer=layer, redis=client, name=labhost.name, claim_timeout=0.3)
    try:
        with pytest.raises(HostAlreadyRunning):
            await second.run(asyncio.Event())
    finally:
        await client.aclose()
        await layer.close_pools()
    assert await labhost.client.exists(labprotocol.heartbeat_key(labhost.name)) == 1


def test_runlabs_stops_cleanly_on_sigterm_and_on_sigint(
    server_env: dict[str, str], redis_url: str
) -> None:
    from asgiref.sync import async_to_sync

    for sig in (signal.SIGTERM, signal.SIGINT):
        name = f"labhost-proc-{uuid.uuid4().hex[:6]}"
        host = start_runlabs(server_env, redis_url, name=name, fleet=f"fleet-{name}")
        try:
            async_to_sync(_create_and_wait)(redis_url, name, host.process.pid)
            tree = [p.pid for p in host.tree()]
            assert tree
            host.process.send_signal(sig)
            assert host.process.wait(timeout=30) == 0
            assert gone_within(tree, 5) == []
        finally:
            stop_process(host.process)


def test_workers_of_a_killed_host_die_on_their_own(
    server_env: dict[str, str], redis_url: str
) -> None:
    from asgiref.sync import async_to_sync

    name = f"labhost-proc-{uuid.uuid4().hex[:6]}"
    host = start_runlabs(server_env, redis_url, name=name, fleet=f"fleet-{name}")
    try:
        async_to_sync(_create_and_wait)(redis_url, name, host.process.pid)
        tree = [p.pid for p in host.tree()]
        assert tree
        host.process.send_signal(signal.SIGKILL)
        host.process.wait(timeout=10)
        assert gone_within(tree, 10) == [], "workers outlived a SIGKILLed lab host"
        # And the web tier soon stops believing in it.
        heartbeat = labprotocol.heartbeat_key(name)
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10
        while client.exists(heartbeat) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not client.exists(heartbeat)
    finally:
        stop_process(host.process)


async def _create_and_wait(redis_url: str, name: str, host_pid: int) -> None:
    layer = RedisChannelLayer(hosts=[redis_url])
    try:
        _, reply = await create(layer, name, owner="a", workers=2)
        assert reply["type"] == "lab.created"
        # Two workers up means two processes (at least) under the host.
        await eventually(lambda: len(psutil.Process(host_pid).children(recursive=True)) >= 2, 30)
    finally:
        await layer.close_pools()


async def create_on(url: str, host: str, owner: str) -> str:
    web = RedisChannelLayer(hosts=[url])
    try:
        lab_id, reply = await create(web, host, owner=owner)
    finally:
        await web.close_pools()
    assert reply["type"] == "lab.created"
    return lab_id


@pytest.mark.parametrize(
    ("later", "reason"),
    [(61, "No one watched this lab for 60 seconds."), (1801, "30-minute limit")],
    ids=["idle", "past its lifetime"],
)
async def test_labs_are_closed_on_time_while_redis_is_down(
    host_on_own_redis: tuple[RunningHost, OwnRedis],
    caplog: pytest.LogCaptureFixture,
    later: float,
    reason: str,
) -> None:
    running, own = host_on_own_redis
    host = running.host
    host.limits = HostLimits()  # 60 s idle, 30 minutes at most
    lab_id = await create_on(own.url, running.name, "a")
    pids = await started(running, lab_id)
    own.kill()  # every heartbeat fails from now on
    await eventually(lambda: host.redis_down_since is not None, 10)
    # Then time passes on the clock the host reads: housekeeping closes the lab, Redis or not.
    host.clock = lambda: time.monotonic() + later
    with caplog.at_level("INFO", logger="playground.labhost"):
        await eventually(lambda: lab_id not in host.labs, 15)
    assert gone_within(pids, 5) == []
    assert f"lab {lab_id} closed: " in caplog.text and reason in caplog.text


async def test_a_restarted_redis_gets_the_records_of_running_labs_again(
    host_on_own_redis: tuple[RunningHost, OwnRedis],
) -> None:
    running, own = host_on_own_redis
    running.host.limits = HostLimits()  # no idle closing in this test
    lab_id = await create_on(own.url, running.name, "the-owner")
    await started(running, lab_id)
    key = labprotocol.lab_key(lab_id)
    record = await running.client.get(key)
    own.kill()
    own.start_again()  # empty: no persistence
    # The record is written again (the same one: owner digest, mode, creation time).
    await eventually(lambda: _sync_redis(own.url).get(key) == record, 15)
    assert lab_id in running.host.labs


async def test_a_host_started_while_redis_is_down_waits_for_it_and_then_serves() -> None:
    own = OwnRedis()
    own.kill()  # nothing listens on its port now
    layer = RedisChannelLayer(hosts=[own.url], expiry=30)
    client = redis.asyncio.Redis.from_url(own.url)
    host = LabHost(layer=layer, redis=client, name=f"labhost-late-{uuid.uuid4().hex[:6]}")
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    try:
        # It is still trying (a crash would end the task), until Redis is there.
        await eventually(lambda: host.redis_down_since is not None, 10)
        assert not task.done()
        own.start_again()
        await eventually(lambda: client_exists(own.url, labprotocol.heartbeat_key(host.name)), 15)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
        await client.aclose()
        await layer.close_pools()
        own.server.stop()


async def test_no_snapshot_is_pushed_once_the_heartbeat_finds_redis_down(
    host_on_own_redis: tuple[RunningHost, OwnRedis], caplog: pytest.LogCaptureFixture
) -> None:
    running, own = host_on_own_redis
    host = running.host
    host.limits = HostLimits()
    owner = uuid.uuid4().hex
    lab_id = await create_on(own.url, running.name, owner)
    await started(running, lab_id)
    host.labs[lab_id].viewers["a-viewer"] = host.clock()  # as a lab.attach would
    own.kill()
    await eventually(lambda: host.redis_down_since is not None, 10)
    caplog.clear()
    # What the publisher does 5 times a second: with Redis known to be down, nothing at all
    # (not a failed send and a warning each time).
    await host._push(host.labs[lab_id])
    assert "could not push" not in caplog.text


async def test_labs_running_per_address_are_limited_and_other_addresses_still_served(
    start_labhost: Any, web: RedisChannelLayer
) -> None:
    running = await start_labhost(limits=HostLimits(max_labs=10, max_per_address=2))
    for _ in range(2):
        _, reply = await create(web, running.name, owner="a", client="203.0.113.7")
        assert reply["type"] == "lab.created"
    # Another owner (a client dropping cookies) from the same address.
    lab_id, reply = await create(web, running.name, owner="b", client="203.0.113.7")
    assert reply["type"] == "lab.error"
    assert reply["code"] == 429
    assert "your network address" in reply["message"]
    assert lab_id not in running.host.labs
    _, reply = await create(web, running.name, owner="c", client="198.51.100.1")
    assert reply["type"] == "lab.created"
    # A learner at the limit may still replace a lab of their own (it closes the oldest).
    _, reply = await create(web, running.name, owner="a", client="203.0.113.7")
    assert reply["type"] == "lab.created"


async def test_a_nearly_full_host_keeps_its_last_places_for_new_addresses(
    start_labhost: Any, web: RedisChannelLayer
) -> None:
    limits = HostLimits(max_labs=5, address_reserve=0.4)
    assert limits.reserved == 2
    running = await start_labhost(limits=limits)
    for owner in ("a", "b", "c"):
        _, reply = await create(web, running.name, owner=owner, client="203.0.113.7")
        assert reply["type"] == "lab.created"
    lab_id, reply = await create(web, running.name, owner="d", client="203.0.113.7")
    assert reply["type"] == "lab.error"
    assert reply["code"] == 503
    assert "kept for people who have no lab running" in reply["message"]
    assert lab_id not in running.host.labs
    # Each address with no lab running takes one of the reserved places, and only one.
    _, reply = await create(web, running.name, owner="e", client="198.51.100.1")
    assert reply["type"] == "lab.created"
    _, reply = await create(web, running.name, owner="f", client="198.51.100.1")
    assert reply["type"] == "lab.error"
    _, reply = await create(web, running.name, owner="g", client="192.0.2.9")
    assert reply["type"] == "lab.created"
    _, reply = await create(web, running.name, owner="h", client="192.0.2.10")
    assert reply["type"] == "lab.error"
    assert "full" in reply["message"]


async def test_a_closed_lab_leaves_nothing_of_itself_in_the_host(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    lab_id, _ = await create(web, labhost.name, owner="o")
    await started(labhost, lab_id)
    await eventually(lambda: labhost.host.labs[lab_id].lab.metrics.requests_ok > 0, 15)
    lab = weakref.ref(labhost.host.labs[lab_id].lab)
    metrics = weakref.ref(labhost.host.labs[lab_id].lab.metrics)
    await labhost.host.lab_close(hosted=labhost.host.labs[lab_id], reason="test")
    await eventually(lambda: not labhost.host._tasks, 10)  # its tasks are done and dropped
    gc.collect()
    # No lingering reference: the lab and its metrics (the run's latencies) are freed.
    assert lab() is None
    assert metrics() is None


# -- sharing with a class ---------------------------------------------------------------


async def test_a_shared_lab_takes_watchers_by_its_code_and_nothing_else(
    labhost: RunningHost, web: RedisChannelLayer
) -> None:
    lab_id, _ = await create(web, labhost.name, owner="a")
    await started(labhost, lab_id)
    refused = await ask(web, labhost.name, "lab.share", lab_id=lab_id, owner="b", share=True)
    assert refused["type"] == "lab.refused"
    shared = await ask(web, labhost.name, "lab.share", lab_id=lab_id, owner="a", share=True)
    code = shared["code"]
    assert shared["type"] == "lab.shared" and labprotocol.WATCH_CODE.match(code)
    # Sharing again keeps the code the class already has.
    again = await ask(web, labhost.name, "lab.share", lab_id=lab_id, owner="a", share=True)
    assert again["code"] == code
    assert (await labhost.client.get(labprotocol.watch_key(code))).decode() == lab_id
    record = json.loads(await labhost.client.get(labprotocol.lab_key(lab_id)))
    assert record["watch"] == code

    # A watcher attaches with the code; a renewal from the same socket gets no snapshot.
    watcher = await web.new_channel()
    attach = {"type": "lab.attach", "lab_id": lab_id, "watch": code, "reply_channel": watcher}
    await web.send(labhost.name, attach)
    first = await next_of(web, watcher, "lab.attached")
    assert first["snapshot"]["id"] == lab_id
    await web.send(labhost.name, attach)
    assert (await next_of(web, watcher, "lab.attached"))["snapshot"] is None
    # The code opens the view, never the controls.
    command = await ask(
        web,
        labhost.name,
        "lab.command",
        lab_id=lab_id,
        watch=code,
        action="kill",
        worker="worker-1",
    )
    assert command["type"] == "lab.refused"
    assert all(w["status"] == "up" for w in labhost.host.labs[lab_id].lab.snapshot()["workers"])
    wrong = await ask(web, labhost.name, "lab.attach", lab_id=lab_id, watch="X" * 8)
    assert wrong["type"] == "lab.refused"

    # Stop sharing: the class hears it, the code is retired (and answers "ended").
    group_member = await web.new_channel()
    await web.group_add(labprotocol.group_name(lab_id), group_member)
    stopped = await ask(web, labhost.name, "lab.share", lab_id=lab_id, owner="a", share=False)
    assert stopped == {"type": "lab.shared", "lab_id": lab_id, "code": None}
    assert (await next_of(web, group_member, "lab.unshared"))["lab_id"] == lab_id
    assert await labhost.client.exists(labprotocol.watch_key(code)) == 0
    ended = await labhost.client.get(labprotocol.watch_ended_key(code))
    assert ended == labprotocol.WATCH_STOPPED.encode()
    assert "watch" not in json.loads(await labhost.client.get(labprotocol.lab_key(lab_id)))
    late = await ask(web, labhost.name, "lab.attach", lab_id=lab_id, watch=code)
    assert late["type"] == "lab.refused"


async def test_a_shared_lab_outlives_a_private_labs_lifetime_and_its_code_ends_with_it(
    start_labhost: Any, web: RedisChannelLayer
) -> None:
    running = await start_labhost(limits=HostLimits(max_lifetime=1.0, shared_lifetime=4.0))
    private, _ = await create(web, running.name, owner="a")
    shared, _ = await create(web, running.name, owner="b")
    code = (await ask(web, running.name, "lab.share", lab_id=shared, owner="b", share=True))["code"]
    for lab_id, owner in ((private, "a"), (shared, "b")):
        await ask(web, running.name, "lab.attach", lab_id=lab_id, owner=owner)
    await eventually(lambda: private not in running.host.labs, 10)
    assert shared in running.host.labs  # past the private lifetime, still running
    # Its code is renewed with its record (both lapse within seconds if the host dies).
    assert 0 < await running.client.ttl(labprotocol.watch_key(code)) <= 5
    await eventually(lambda: shared not in running.host.labs, 10)
    # The host retires the code just after it lets the lab go: the retirement comes, and says why.
    ended = await eventually(lambda: running.client.get(labprotocol.watch_ended_key(code)), 5)
    assert ended == labprotocol.WATCH_LAB_CLOSED.encode()
    assert await running.client.exists(labprotocol.watch_key(code)) == 0
