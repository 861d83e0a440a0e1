"""The balancer in front of real workers, driven by hand-made requests (no virtual users)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from playground.lab.balancer import Balancer
from playground.lab.process import Supervisor, WorkerProcess, WorkerSpec
from playground.lab.wire import Connection, Request, Response

from .conftest import eventually


@dataclass
class Rig:
    balancer: Balancer
    supervisor: Supervisor
    events: list[tuple[str, str]]

    def worker(self, name: str) -> WorkerProcess:
        return self.supervisor.workers[name]

    async def send(
        self,
        method: str,
        path: str,
        cookies: dict[str, str] | None = None,
        data: dict | None = None,
    ) -> Response:
        assert self.balancer.port is not None
        headers = [("Host", "shop")]
        if cookies:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())))
        body = json.dumps(data).encode() if data is not None else b""
        conn = await Connection.open("127.0.0.1", self.balancer.port, 2.0)
        try:
            async with asyncio.timeout(5.0):
                return await conn.exchange(
                    Request(method=method, target=path, headers=headers, body=body)
                )
        finally:
            conn.close()


async def start_rig(workers: int, work_ms: float = 0.0, **balancer: object) -> Rig:
    events: list[tuple[str, str]] = []
    lb = Balancer(
        on_health=lambda b, up, why: events.append(("up" if up else "down", b.name)),
        **balancer,  # type: ignore[arg-type]
    )
    supervisor = Supervisor(
        WorkerSpec(mode="stateful", work_ms=work_ms),
        emit=lambda kind, text: events.append((kind, text)),
        on_ready=lambda w: lb.set_address(w.name, w.port or 0),
        on_exit=lambda w: None,
    )
    rig = Rig(lb, supervisor, events)
    await lb.start()
    try:
        for n in range(1, workers + 1):
            lb.add(f"worker-{n}")
            await supervisor.spawn(supervisor.add(f"worker-{n}"))
    except BaseException:
        await stop_rig(rig)
        raise
    return rig


async def stop_rig(rig: Rig) -> None:
    await rig.balancer.close()
    await rig.supervisor.close()


@pytest.fixture
async def rig2() -> AsyncIterator[Rig]:
    rig = await start_rig(2, work_ms=300, sticky=True)
    yield rig
    await stop_rig(rig)


async def login(rig: Rig) -> dict[str, str]:
    response = await rig.send("POST", "/login", data={"user": "alice"})
    assert response.status == 200
    cookies = {}
    for header in response.all_headers("set-cookie"):
        name, _, value = header.split(";")[0].partition("=")
        cookies[name] = value
    assert set(cookies) == {"session", "LB"}
    assert cookies["LB"] == response.header("X-Worker")
    return cookies


async def test_sticky_cookie_keeps_a_user_on_its_worker(rig2: Rig) -> None:
    cookies = await login(rig2)
    for _ in range(4):
        response = await rig2.send("GET", "/cart", cookies)
        assert response.status == 200
        assert response.header("X-Worker") == cookies["LB"]
        assert response.header("Set-Cookie") is None  # already pinned: nothing to insert


async def test_round_robin_without_sticky_alternates_workers() -> None:
    rig = await start_rig(2, sticky=False)
    try:
        served = [(await rig.send("GET", "/health")).header("X-Worker") for _ in range(4)]
        assert served == ["worker-1", "worker-2", "worker-1", "worker-2"]
    finally:
        await stop_rig(rig)


async def test_least_conn_avoids_the_busy_worker() -> None:
    rig = await start_rig(2, work_ms=400, sticky=False, balancing="least_conn")
    try:
        slow = asyncio.create_task(rig.send("POST", "/login", data={"user": "slow"}))
        backends = rig.balancer.backends
        assert await eventually(lambda: sum(b.inflight for b in backends.values()) == 1)
        busy = next(name for name, b in backends.items() if b.inflight)
        response = await rig.send("POST", "/login", data={"user": "quick"})
        assert response.header("X-Worker") != busy
        assert (await slow).status == 200
    finally:
        await stop_rig(rig)


async def test_worker_dying_mid_request_gives_502_and_no_retry(rig2: Rig) -> None:
    cookies = await login(rig2)
    pinned, other = cookies["LB"], ({"worker-1", "worker-2"} - {cookies["LB"]}).pop()
    other_backend = rig2.balancer.backends[other]
    dispatched_elsewhere = other_backend.dispatched

    add = asyncio.create_task(rig2.send("POST", "/cart/items", cookies, {"sku": "sku-01"}))
    assert await eventually(lambda: rig2.balancer.backends[pinned].inflight == 1)
    await rig2.supervisor.kill(rig2.worker(pinned))
    response = await add

    assert response.status == 502
    assert response.header("X-Error-Source") == "balancer"
    assert other_backend.dispatched == dispatched_elsewhere  # the POST was not sent again


async def test_refused_connection_is_redispatched_to_a_healthy_worker(rig2: Rig) -> None:
    cookies = await login(rig2)
    pinned = cookies["LB"]
    await rig2.supervisor.kill(rig2.worker(pinned))
    assert rig2.balancer.backends[pinned].healthy  # checks have not noticed yet

    response = await rig2.send("GET", "/cart", cookies)

    # Nothing reached the dead worker, so the balancer sent it elsewhere, which does not
    # know the session: the user must log in again. Not a failed request.
    assert response.status == 401
    assert response.header("X-Worker") != pinned
    assert response.header("Set-Cookie") == f"LB={response.header('X-Worker')}; Path=/"


async def test_health_checks_mark_a_dead_worker_down_and_503_when_none_is_left() -> None:
    rig = await start_rig(1, sticky=False, interval=0.05, fall=2, rise=2)
    try:
        await rig.supervisor.kill(rig.worker("worker-1"))
        assert await eventually(lambda: ("down", "worker-1") in rig.events)
        response = await rig.send("GET", "/cart")
        assert response.status == 503
        assert response.header("X-Error-Source") == "balancer"
    finally:
        await stop_rig(rig)


async def test_a_drained_worker_gets_no_new_requests(rig2: Rig) -> None:
    rig2.balancer.sticky = False
    await rig2.balancer.drain("worker-1")
    served = {(await rig2.send("GET", "/health")).header("X-Worker") for _ in range(4)}
    assert served == {"worker-2"}


async def test_a_health_connection_the_worker_ended_is_closed_before_the_next_opens() -> None:
    # A worker that ends each keep-alive connection after one answer, as a restarted or
    # stopped worker does: the balancer must close its end, not leave it to the collector.
    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"requests": 0}'
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        writer.write(head.encode() + b"\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(worker, "127.0.0.1", 0)
    lb = Balancer(interval=0.05, timeout=0.04)
    await lb.start()
    try:
        backend = lb.add("worker-1")
        lb.set_address("worker-1", server.sockets[0].getsockname()[1])
        assert await eventually(lambda: backend.health_conn is not None)
        first = backend.health_conn
        assert first is not None
        assert await eventually(lambda: backend.health_conn not in (None, first))
        assert first.writer.is_closing()
        assert backend.healthy
    finally:
        await lb.close()
        server.close()
        await server.wait_closed()
