"""Fixtures for the playground's web side: a real lab host, in-process or as `runlabs`.

`labhost` runs a LabHost on the test's own event loop, on the run's real Redis, under a
name of its own (so it never takes messages meant for another host) in a fleet of the test's
own (so the web tier places the test's labs on it and on no other). `labhost_process` is
`manage.py runlabs` as a subprocess in the site's default fleet, for the view and browser
tests; when the session ends it checks that stopping the host left no process of any lab
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import psutil
import pytest
import redis
import redis.asyncio
from channels_redis.core import RedisChannelLayer
from django.contrib.sessions.backends.cache import SessionStore

from config import embedded_redis
from config.lifeline import die_with_parent
from playground import labprotocol
from playground.labhost.host import LabHost
from playground.labhost.limits import HostLimits
from tests.conftest import ROOT, stop_process

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")  # the origin check compares the origin with the host


def alive(pid: int) -> bool:
    """True if pid is a running process (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy, or fail. A bound, not a timing claim.
    `check` may return an awaitable (a Redis read): its result is what counts."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {within}s: {check}")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {check}")
        time.sleep(0.05)


@dataclass
class RunningHost:
    host: LabHost
    layer: RedisChannelLayer
    client: redis.asyncio.Redis
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def name(self) -> str:
        return self.host.name


@pytest.fixture
async def start_labhost(redis_url: str, settings: Any) -> AsyncIterator[Callable[..., Any]]:
    """Start in-process lab hosts, in a fleet of this test's own (the web tier's, here)."""
    running: list[RunningHost] = []
    fleet = f"fleet-test-{uuid.uuid4().hex[:8]}"
    settings.PLAYGROUND_FLEET = fleet

    async def start(limits: HostLimits | None = None, name: str | None = None) -> RunningHost:
        name = name or f"labhost-test-{uuid.uuid4().hex[:8]}"
        layer = RedisChannelLayer(hosts=[redis_url], expiry=30, capacity=1000)
        client = redis.asyncio.Redis.from_url(redis_url)
        host = LabHost(
            layer=layer,
            redis=client,
            name=name,
            fleet=fleet,
            limits=limits,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(host.run(stop))
        await eventually(lambda: client_exists(redis_url, labprotocol.heartbeat_key(name)), 5)
        entry = RunningHost(host=host, layer=layer, client=client, stop=stop, task=task)
        running.append(entry)
        return entry

    yield start
    for entry in running:
        entry.stop.set()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await entry.task
        await entry.client.aclose()
        await entry.layer.close_pools()
        assert entry.host.labs == {}


@pytest.fixture
async def labhost(start_labhost: Callable[..., Any]) -> RunningHost:
    return await start_labhost()


def client_exists(redis_url: str, key: str) -> bool:
    return bool(_sync_redis(redis_url).exists(key))


_clients: dict[str, redis.Redis] = {}


def _sync_redis(url: str) -> redis.Redis:
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


@pytest.fixture
def owner_session() -> Callable[[], tuple[str, str]]:
    """Make a browser session that owns labs: returns (session key, owner token)."""

    def make() -> tuple[str, str]:
        session = SessionStore()
        owner = uuid.uuid4().hex
        session["lab_owner"] = owner
        session.save()
        assert session.session_key is not None
        return session.session_key, owner

    return make


def session_headers(session_key: str | None) -> list[tuple[bytes, bytes]]:
    headers = [ORIGIN, HOST]
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    return headers


@dataclass
class HostProcess:
    process: subprocess.Popen[bytes]
    redis_url: str
    name: str

    def tree(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def lab_ids(self) -> list[str]:
        """The labs in the registry that this host runs."""
        client = _sync_redis(self.redis_url)
        keys: list[bytes] = client.keys(labprotocol.lab_key("*"))  # type: ignore[assignment]
        ids = []
        for key in keys:
            raw = cast(bytes | None, client.get(key))
            if raw is not None and json.loads(raw).get("host") == self.name:
                ids.append(key.decode().rsplit(":", 1)[1])
        return ids


def host_named_by_pid(redis_url: str, fleet: str, pid: int) -> str | None:
    """The name under which the lab host with this pid serves in `fleet`, once it does."""
    client = _sync_redis(redis_url)
    for raw_name in cast(list[bytes], client.zrange(labprotocol.fleet_key(fleet), 0, -1)):
        name = raw_name.decode()
        beat = labprotocol.heartbeat_parse(
            cast(bytes | None, client.get(labprotocol.heartbeat_key(name)))
        )
        if beat is not None and beat["pid"] == pid:
            return name
    return None


def start_runlabs(
    env: dict[str, str],
    redis_url: str,
    name: str | None = None,
    *,
    fleet: str | None = None,
    args: tuple[str, ...] = (),
) -> HostProcess:
    """`manage.py runlabs` (with no --name: the host's own default, as a school runs it),
    returned once it serves in `fleet` (by default the one `env` names, as the web tier
    started with the same `env` reads it)."""
    fleet = fleet or env.get("PLAYGROUND_FLEET", labprotocol.DEFAULT_FLEET)
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runlabs",
            "--fleet",
            fleet,
            *(["--name", name] if name else []),
            *args,
        ],
        cwd=ROOT,
        env=env,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 20
    while (found := host_named_by_pid(redis_url, fleet, process.pid)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"runlabs did not start (exit code {process.returncode})")
        time.sleep(0.05)
    assert name is None or found == name
    return HostProcess(process=process, redis_url=redis_url, name=found)


def stop_runlabs_checked(host: HostProcess) -> None:
    """SIGTERM the host and check it took every process of every lab with it."""
    tree = host.tree()
    host.process.send_signal(signal.SIGTERM)
    try:
        host.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stop_process(host.process)
        raise
    assert host.process.returncode == 0
    assert gone_within([p.pid for p in tree], 5) == [], "lab processes outlived the lab host"


def gone_within(pids: list[int], timeout: float) -> list[int]:
    """Wait up to `timeout` for every pid to end; return those still running."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(scope="session")
def labhost_process(server_env: dict[str, str], redis_url: str) -> Iterator[HostProcess]:
    """`manage.py runlabs` on the test settings, in the live server's fleet."""
    host = start_runlabs(server_env, redis_url)
    yield host
    stop_runlabs_checked(host)


class OwnRedis:
    """A Redis of the test's own, which it may kill and start again on the same port."""

    def __init__(self) -> None:
        self.server = embedded_redis.start()
        self.url = self.server.url

    def kill(self) -> None:
        self.server.process.kill()
        self.server.stop()

    def start_again(self) -> None:
        self.server = embedded_redis.start(port=self.server.port)


@pytest.fixture
async def host_on_own_redis() -> AsyncIterator[tuple[RunningHost, OwnRedis]]:
    """A lab host on a Redis of its own, so that stopping that Redis takes nothing away
    from the other tests. Labs close after a second without a viewer."""
    own = OwnRedis()
    layer = RedisChannelLayer(hosts=[own.url], expiry=30)
    client = redis.asyncio.Redis.from_url(own.url)
    host = LabHost(
        layer=layer,
        redis=client,
        name=f"labhost-own-{uuid.uuid4().hex[:6]}",
        limits=HostLimits(idle_timeout=1.0),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    running = RunningHost(host=host, layer=layer, client=client, stop=stop, task=task)
    await eventually(lambda: client_exists(own.url, labprotocol.heartbeat_key(host.name)), 5)
    try:
        yield running, own
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
        with contextlib.suppress(Exception):
            await client.aclose()
        with contextlib.suppress(Exception):
            await layer.close_pools()
        own.server.stop()
        assert host.labs == {}
