"""Behind the shipped HAProxy (deploy/haproxy.cfg): page latency with 1 and with 2 daphne
processes at a fixed request rate, and the time from a SIGKILL of the daphne holding a lab's
socket to that socket live again through the other one.

Latency is open-loop: requests are sent on a fixed schedule whatever the answers do, and
each is timed from when it was due, so a stalled server shows in the figures instead of
slowing the load (no coordinated omission). One new connection per request, as browsers
behind many NATs make them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import psutil

from config.embedded_redis import free_port

from .common import (
    ROOT,
    Browser,
    Report,
    Server,
    Skip,
    Stack,
    Target,
    fmt,
    percentile,
    run_async,
    wait_for_port,
    which,
)
from .ws import WebSocket, WebSocketClosed

PAGE = "/lessons/the-tradeoff/"
RATE = 60.0  # requests a second: a class of 200 reading, a page every 3 s each
SECONDS = 15.0
QUICK_SECONDS = 5.0
ROUNDS = 5
QUICK_ROUNDS = 2
RETRY_EVERY = 0.05  # the benchmark's reconnect loop (the page's htmx ws backoff adds to it)
GOAL_RECONNECT_MS = 3000.0


def haproxy(stack: Stack, env: dict[str, str], web: list[int], name: str) -> Server:
    """deploy/haproxy.cfg as shipped, over these daphne ports (one port twice: one daphne)."""
    binary = which("haproxy") or which("/usr/sbin/haproxy")
    if binary is None:
        raise Skip("haproxy is not installed: apt-get install haproxy (.ci/run installs it)")
    port = free_port()
    process, log = stack.spawn(
        [binary, "-db", "-f", str(ROOT / "deploy/haproxy.cfg")],
        env={
            **env,
            "HAPROXY_BIND": f"127.0.0.1:{port}",
            "SITE_HOST": "127.0.0.1",
            "WEB_1": f"127.0.0.1:{web[0]}",
            "WEB_2": f"127.0.0.1:{web[-1]}",
        },
        log_name=f"haproxy-{name}",
    )
    wait_for_port(port, process, 20, log)
    return Server(process, port, log)


def daphne_on(stack: Stack, env: dict[str, str], port: int, name: str) -> Server:
    process, log = stack.spawn(
        [
            *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)),
            "config.asgi:application",
        ],
        env=env,
        log_name=name,
    )
    wait_for_port(port, process, 30, log)
    return Server(process, port, log)


async def _get(port: int, cookie: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {PAGE} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readline()
        await reader.read()  # to the end: the page is whole
        return int(head.split()[1])
    finally:
        writer.close()


async def _open_loop(
    port: int, cookie: str, rate: float, seconds: float
) -> tuple[list[float], int]:
    """Latencies in ms of the requests that got a 200; and how many did not."""
    latencies: list[float] = []
    failed = 0

    async def one(due: float) -> None:
        nonlocal failed
        try:
            async with asyncio.timeout(10):
                status = await _get(port, cookie)
        except (OSError, TimeoutError, IndexError, ValueError):
            status = 0
        if status == 200:
            latencies.append((time.perf_counter() - due) * 1000)
        else:
            failed += 1

    start = time.perf_counter()
    tasks = []
    for n in range(int(rate * seconds)):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return latencies, failed


def holders(daphnes: dict[int, Server]) -> list[int]:
    """Ports of the daphne processes with an open connection from the proxy: with
    http-server-close in deploy/haproxy.cfg, only a WebSocket stays open."""
    held = []
    for port, server in daphnes.items():
        if server.process.poll() is not None:
            continue
        connections = psutil.Process(server.process.pid).net_connections(kind="tcp")
        if any(c.status == "ESTABLISHED" and c.laddr.port == port for c in connections):
            held.append(port)
    return held


async def _live(url: str, origin: str, cookie: str, within: float) -> WebSocket:
    """Connect (again and again, every RETRY_EVERY) until a snapshot arrives."""
    deadline = time.monotonic() + within
    while True:
        try:
            ws = await WebSocket.connect(url, origin=origin, cookie=cookie, within=2)
            try:
                while True:
                    _, text = await ws.recv(within=2)
                    if json.loads(text).get("type") == "snapshot":
                        return ws
            except BaseException:
                await ws.close()
                raise
        except (OSError, TimeoutError, WebSocketClosed):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(RETRY_EVERY)


async def _failover(
    url: str, origin: str, cookie: str, daphnes: dict[int, Server]
) -> tuple[float, int]:
    """SIGKILL the daphne holding the socket; ms until a socket is live again. And its port."""
    ws = await _live(url, origin, cookie, 10)
    try:
        for _ in range(100):  # the proxy's other connections close at once (at most 5 s)
            if held := holders(daphnes):
                break
            await asyncio.sleep(0.05)
        if len(held) != 1:
            raise RuntimeError(f"expected one daphne to hold the socket, found {held}")
        killed = time.perf_counter()
        daphnes[held[0]].process.kill()
    finally:
        await ws.close()
    again = await _live(url, origin, cookie, 30)
    took = (time.perf_counter() - killed) * 1000
    await again.close()
    return took, held[0]


async def _host_killed(
    url: str, origin: str, cookie: str, host: subprocess.Popen[bytes]
) -> tuple[float, list[int]]:
    """SIGKILL the lab's host; ms until its page is told, and its processes still alive."""
    ws = await _live(url, origin, cookie, 20)
    try:
        workers = psutil.Process(host.pid).children(recursive=True)
        killed = time.perf_counter()
        host.kill()
        while True:
            arrived, text = await ws.recv(within=15)
            message = json.loads(text)
            if message.get("type") == "closed":
                if message.get("code") != 4503:
                    raise RuntimeError(f"the lab ended otherwise: {message.get('message')}")
                break
    finally:
        await ws.close()
    await asyncio.sleep(1)  # the workers notice their parent is gone (a watchdog's period)
    return (arrived - killed) * 1000, [w.pid for w in workers if _alive(w)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run(quick: bool) -> Report:
    report = Report("proxy", "Pages and lab sockets through HAProxy (deploy/haproxy.cfg)")
    seconds = QUICK_SECONDS if quick else SECONDS
    rounds = QUICK_ROUNDS if quick else ROUNDS
    with Stack("bench-proxy-") as stack:
        redis = stack.redis()
        env = {**stack.site_env(redis.url), "TRUSTED_PROXIES": "127.0.0.1"}
        host, _ = stack.labhost(env, redis.url)
        ports = [free_port(), free_port()]
        daphnes = {p: daphne_on(stack, env, p, f"daphne-{n}") for n, p in enumerate(ports)}
        one = haproxy(stack, env, ports[:1], "one")
        two = haproxy(stack, env, ports, "two")

        learner = Browser(two.url)
        if learner.request(PAGE).status != 200:
            raise Skip(f"GET {PAGE} through the proxy did not answer 200")
        cookie = learner.cookie_header()
        for port in ports:  # each builds its course snapshot on its first page, not timed
            for _ in range(3):
                Browser(f"http://127.0.0.1:{port}").request(PAGE)
        rows = []
        for label, proxy in (("1 daphne", one), ("2 daphne", two)):
            run_async(_open_loop(proxy.port, cookie, RATE, 2), 60)  # warm up
            latencies, failed = run_async(_open_loop(proxy.port, cookie, RATE, seconds), 120)
            rows.append(
                [
                    label,
                    len(latencies),
                    failed,
                    percentile(latencies, 50),
                    percentile(latencies, 99),
                    max(latencies, default=float("nan")),
                ]
            )
        report.say(
            f"GET {PAGE} (a learner's session) through HAProxy at {RATE:g} requests/s for "
            f"{seconds:g} s, open loop, a new connection each; HAProxy on 1 or 2 daphne."
        )
        report.say()
        report.table(["backends", "answered", "failed", "p50 ms", "p99 ms", "max ms"], rows)

        lab_id = learner.lab_start(mode="stateless", workers="2", users="4", rate="10")
        ws_url = f"ws://127.0.0.1:{two.port}/ws/labs/{lab_id}/"
        cookie = learner.cookie_header()
        times = []
        for n in range(rounds):
            took, port = run_async(_failover(ws_url, two.url, cookie, daphnes), 90)
            times.append(took)
            daphnes[port] = daphne_on(stack, env, port, f"daphne-again-{n}")
            time.sleep(3)  # HAProxy's check sees it up again (rise 2, every second)
        report.say()
        report.say(
            f"SIGKILL of the daphne holding a lab's socket, {rounds} times (restarted between): "
            f"from the kill to a snapshot on a new socket through the proxy, reconnecting "
            f"every {RETRY_EVERY * 1000:g} ms. A page's htmx ws extension waits a random "
            "0 to 1 s more before its first retry (full jitter)."
        )
        told = []
        for n in range(rounds):
            lab_id = learner.lab_start(mode="stateful", workers="2", users="4", rate="10")
            ws_url = f"ws://127.0.0.1:{two.port}/ws/labs/{lab_id}/"
            took, left = run_async(_host_killed(ws_url, two.url, cookie, host), 60)
            if left:
                raise RuntimeError(f"processes of the killed lab host outlived it: {left}")
            told.append(took)
            host, _ = stack.labhost(env, redis.url, name=f"labhost-{n + 2}")
        report.table(
            ["what", "samples", "p50 ms", "max ms"],
            [
                ["daphne kill -> live again", len(times), percentile(times, 50), max(times)],
                ["lab host kill -> page told", len(told), percentile(told, 50), max(told)],
            ],
        )
        report.say(
            "lab host kill -> page told: SIGKILL of the lab's host to the socket's `closed` "
            "frame (4503, 'The lab host stopped answering'); the consumer gives a silent host "
            "4 s (playground/consumers.py HOST_SILENT). Its worker processes were all gone "
            "by then, each time."
        )
    worst = max(times)
    report.targets.append(
        Target(
            "daphne SIGKILL -> socket live",
            f"<= {GOAL_RECONNECT_MS:g} ms",
            f"max {fmt(worst)} ms (p50 {fmt(percentile(times, 50))} ms, {len(times)} kills)",
            worst <= GOAL_RECONNECT_MS,
        )
    )
    return report
