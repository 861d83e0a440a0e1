"""A class watching one shared lab: 200 watchers on one daphne, then on two behind the same
Redis, each a real WebSocket client with a session of its own, at the lab's 5 updates a
second. Measured: the update lag from the host's `sent_at` (time.time() when it took the
snapshot, carried by the layer message and by the frame) to the frame's arrival at each
client, and the CPU of the lab host and of each daphne.

The real path, as a class takes it: the owner starts a lab through the form and presses
`Share with the class`; each watcher GETs the `data-watch-url` link (its session cookie)
and opens /ws/watch/<code>/ with that cookie. With two daphne processes the watchers are
spread over both in turn (a proxy without stickiness); the owner's socket stays on the
first. Every client runs in this one process, on the same 2 cores as the servers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .common import (
    Browser,
    Report,
    Server,
    Skip,
    Stack,
    Target,
    cpu_seconds,
    csrf_token,
    fmt,
    percentile,
    run_async,
)

if TYPE_CHECKING:
    # Imported when a run starts: bench.ws picks txaio's asyncio flavour on import, which
    # the test run (where daphne picked twisted) cannot take.
    from .ws import WebSocket

GOAL_WATCHERS = 200
GOAL_P95_MS = 100.0
STEPS = (50, 100, 200)
QUICK_STEPS = (200,)
CONNECT_AT_ONCE = 20  # handshakes in flight: a class clicking the link over a few seconds
SETTLE, WINDOW = 2.0, 10.0
QUICK_SETTLE, QUICK_WINDOW = 1.0, 4.0
LAB = {"mode": "stateful", "workers": "3", "users": "12", "rate": "20", "sticky": "on"}
WATCH_URL = re.compile(r'data-watch-url href="([^"]+)"')
# The frame ends with the tick: `..., "sent_at": 1764500000.123}` (consumers.SnapshotFrames).
SENT_AT = re.compile(r'"sent_at": ([0-9.e+-]+|null)\}$')


@dataclass(eq=False)
class Watcher:
    """One client: (arrival wall time, sent_at) of every snapshot frame it got."""

    ws: WebSocket
    arrivals: list[tuple[float, float]] = field(default_factory=list)
    chars: int = 0  # of the snapshot frames
    closed: str | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self, wall_offset: float) -> None:
        from .ws import WebSocketClosed

        # Only the tail is read: 1000 frames a second of a few kB each would cost this
        # process (which shares the 2 cores with the servers) a JSON parse each.
        try:
            while True:
                arrived, text = await self.ws.recv(within=3600)
                match = SENT_AT.search(text[-48:])
                if match and match.group(1) != "null":
                    self.arrivals.append((arrived + wall_offset, float(match.group(1))))
                    self.chars += len(text)
                    self.first.set()
                elif text.startswith('{"type": "closed"') or text.startswith('{"type": "refused"'):
                    self.closed = str(json.loads(text).get("message"))
        except WebSocketClosed as exc:
            self.closed = self.closed or str(exc)
            self.first.set()


@dataclass
class Step:
    daphnes: int
    watchers: int
    lags: list[float]
    per_watcher_hz: float
    closed: list[str]  # why each watcher that closed did
    cpu: dict[str, float]  # % of one core: host, workers, redis, daphne-N, bench
    waited: list[float]  # % of the time each daphne's event loop was runnable, not running
    frame_kb: float  # mean size of a snapshot frame
    machine_cpu: float


def _share(owner: Browser, lab_id: str) -> str:
    """Press `Share with the class` as the owner (no htmx: the form posts and redirects back
    to the lab page); the watch link from its `data-watch-url`."""
    page = owner.request(f"/playground/labs/{lab_id}/")
    token = csrf_token(page.text)
    if token is None:
        raise Skip("the lab page has no form to share the lab with (no CSRF token)")
    shared = owner.request(f"/playground/labs/{lab_id}/share/", {"csrfmiddlewaretoken": token})
    match = WATCH_URL.search(shared.text)
    if shared.status != 200 or match is None:
        raise Skip(f"sharing the lab gave no data-watch-url (status {shared.status})")
    return match.group(1)


def _cookies(servers: list[Server], path: str, count: int) -> list[tuple[Server, str]]:
    """`count` watchers, each with the session cookie its GET of the watch page gave it,
    spread over the servers in turn."""
    found = []
    for server in itertools.islice(itertools.cycle(servers), count):
        browser = Browser(server.url)
        page = browser.request(path)
        if page.status != 200 or "sessionid" not in browser.cookies():
            raise RuntimeError(f"GET {path} answered {page.status} with no session cookie")
        found.append((server, browser.cookie_header()))
    return found


def _runnable_seconds(pid: int) -> float:
    """Time the process's main thread (a daphne's event loop) spent ready to run but waiting
    for a core: Linux's /proc/<pid>/schedstat, second field (ns). The machine's load, seen
    from the process."""
    try:
        with open(f"/proc/{pid}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


async def _measure(
    servers: list[Server],
    pids: dict[str, int],
    owner: tuple[str, str],
    path: str,
    steps: tuple[int, ...],
    settle: float,
    window: float,
) -> list[Step]:
    import psutil

    from .ws import WebSocket

    code = path.rstrip("/").rsplit("/", 1)[1].replace("-", "")
    wall_offset = time.time() - time.perf_counter()
    host = psutil.Process(pids["host"])
    processes = {
        "host": [host],
        "workers": [],
        "redis": [psutil.Process(pids["redis"])],
        **{f"daphne-{n + 1}": [psutil.Process(s.process.pid)] for n, s in enumerate(servers)},
        "bench": [psutil.Process()],
    }
    owner_ws_url, cookie = owner
    owner_ws = await WebSocket.connect(owner_ws_url, origin=servers[0].url, cookie=cookie)
    owner_view = Watcher(owner_ws)
    watchers: list[Watcher] = []
    tasks = [asyncio.create_task(owner_view.drain(wall_offset))]
    done: list[Step] = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def join(server: Server, cookie: str) -> Watcher:
        async with gate:
            ws = await WebSocket.connect(
                f"ws://127.0.0.1:{server.port}/ws/watch/{code}/",
                origin=server.url,
                cookie=cookie,
                within=30,
            )
        return Watcher(ws)

    try:
        for target in steps:
            new = await asyncio.to_thread(_cookies, servers, path, target - len(watchers))
            joined = await asyncio.gather(*(join(s, c) for s, c in new))
            watchers += joined
            tasks += [asyncio.create_task(w.drain(wall_offset)) for w in joined]
            async with asyncio.timeout(30):
                await asyncio.gather(*(w.first.wait() for w in joined))
            await asyncio.sleep(settle)
            processes["workers"] = host.children(recursive=True)
            before = {name: cpu_seconds(group) for name, group in processes.items()}
            waited = [_runnable_seconds(s.process.pid) for s in servers]
            chars = sum(w.chars for w in watchers)
            frames = sum(len(w.arrivals) for w in watchers)
            psutil.cpu_percent()
            start = time.time()
            await asyncio.sleep(window)
            end = time.time()
            elapsed = end - start
            lags = [
                (arrived - sent) * 1000
                for w in watchers
                for arrived, sent in w.arrivals
                if start <= arrived < end
            ]
            after = {name: cpu_seconds(group) for name, group in processes.items()}
            step = Step(
                daphnes=len(servers),
                watchers=len(watchers),
                lags=lags,
                per_watcher_hz=len(lags) / len(watchers) / elapsed,
                closed=[w.closed for w in watchers if w.closed],
                cpu={name: (after[name] - before[name]) / elapsed * 100 for name in after},
                waited=[
                    (_runnable_seconds(server.process.pid) - before_s) / elapsed * 100
                    for server, before_s in zip(servers, waited, strict=True)
                ],
                frame_kb=(sum(w.chars for w in watchers) - chars)
                / max(1, sum(len(w.arrivals) for w in watchers) - frames)
                / 1000,
                machine_cpu=psutil.cpu_percent(),
            )
            done.append(step)
            print(
                f"  {len(servers)} daphne, {step.watchers} watchers: lag p95 "
                f"{fmt(percentile(lags, 95))} ms",
                flush=True,
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(w.ws.close() for w in [owner_view, *watchers]), return_exceptions=True
        )
    return done


def _run_one(daphnes: int, steps: tuple[int, ...], quick: bool) -> list[Step]:
    from .ws import WebSocketClosed

    settle, window = (QUICK_SETTLE, QUICK_WINDOW) if quick else (SETTLE, WINDOW)
    with Stack("bench-watchers-") as stack:
        redis = stack.redis()
        env = {**stack.site_env(redis.url), "DJANGO_SETTINGS_MODULE": "bench.settings"}
        host, _ = stack.labhost(env, redis.url)
        pids = {"host": host.pid, "redis": redis.process.pid}
        servers = [
            stack.daphne(env, "config.asgi:application", f"site-{n + 1}") for n in range(daphnes)
        ]
        owner = Browser(servers[0].url)
        lab_id = owner.lab_start(**LAB)
        path = _share(owner, lab_id).split("://", 1)[-1]
        path = path[path.index("/") :]
        owner_ws = f"ws://127.0.0.1:{servers[0].port}/ws/labs/{lab_id}/"
        limit = 60 + len(steps) * (settle + window + 60)
        try:
            return run_async(
                _measure(
                    servers, pids, (owner_ws, owner.cookie_header()), path, steps, settle, window
                ),
                limit,
            )
        except WebSocketClosed as exc:
            raise Skip(f"a watch socket closed while connecting: {exc}") from None


def run(quick: bool) -> Report:
    report = Report("watchers", "200 watchers of one shared lab, 1 and 2 daphne")
    steps = QUICK_STEPS if quick else STEPS
    done = [step for daphnes in (1, 2) for step in _run_one(daphnes, steps, quick)]
    rows = []
    for step in done:
        rows.append(
            [
                step.daphnes,
                step.watchers,
                percentile(step.lags, 50),
                percentile(step.lags, 95),
                percentile(step.lags, 99),
                step.per_watcher_hz,
                len(step.closed),
                step.cpu["host"],
                " / ".join(f"{step.cpu[f'daphne-{n + 1}']:.1f}" for n in range(step.daphnes)),
                " / ".join(f"{w:.1f}" for w in step.waited),
                step.cpu["redis"],
                step.cpu["workers"],
                step.cpu["bench"],
                step.machine_cpu,
            ]
        )
    settle, window = (QUICK_SETTLE, QUICK_WINDOW) if quick else (SETTLE, WINDOW)
    report.say(
        "One stateful lab (3 workers, 12 users, 20 req/s) started and shared through the "
        "pages; each watcher GETs the watch link (its own session cookie), then opens "
        f"/ws/watch/<code>/; the owner's own socket stays open. Steps {', '.join(map(str, steps))} "
        f"watchers; each measured for {window:g}s after {settle:g}s."
    )
    report.say()
    report.table(
        [
            "daphne",
            "watchers",
            "lag p50",
            "lag p95",
            "lag p99",
            "upd/s each",
            "closed",
            "host %",
            "daphne % each",
            "daphne waited %",
            "redis %",
            "workers %",
            "bench %",
            "machine %",
        ],
        rows,
    )
    report.say(
        "lag in ms: the host's sent_at (time.time() when it took the snapshot) -> the frame "
        "at a watcher here (the same clock); upd/s each: snapshot frames per watcher a "
        "second (5 when on time); closed: watchers whose socket closed; host %: the lab host "
        "process only; daphne % each: each web process (100 = one core); daphne waited %: "
        "the share of the time each daphne's event loop was ready to run but had no core "
        "(/proc/<pid>/schedstat: the machine's load as daphne felt it); redis %: the "
        "Redis of sessions and the Channels layer; workers %: the lab's worker processes; "
        "bench %: this process, all the clients; machine %: all cores, others' too. The "
        "machine is shared: figures from one run are noisy."
    )
    sizes = [step.frame_kb for step in done]
    report.say(f"a snapshot frame: {fmt(sum(sizes) / len(sizes))} kB on average.")
    # Closed sockets stay closed: each run's last step holds all of that run's.
    reasons = Counter(r for step in done if step.watchers == steps[-1] for r in step.closed)
    if reasons:
        report.say(f"why watchers' sockets closed: {dict(reasons.most_common(3))}")
    for daphnes in (1, 2):
        at_goal = [s for s in done if s.daphnes == daphnes and s.watchers == GOAL_WATCHERS]
        label = "1 daphne" if daphnes == 1 else f"{daphnes} daphne"
        if not at_goal:
            report.targets.append(
                Target(f"{GOAL_WATCHERS} watchers on {label}, lag p95", "<= 100 ms", "-", None)
            )
            continue
        step = at_goal[0]
        p95 = percentile(step.lags, 95)
        report.targets.append(
            Target(
                f"{GOAL_WATCHERS} watchers on {label}, update lag p95",
                f"<= {GOAL_P95_MS:g} ms",
                f"{fmt(p95)} ms (p50 {fmt(percentile(step.lags, 50))} ms, "
                f"{fmt(step.per_watcher_hz)} upd/s each)",
                None if not step.lags else p95 <= GOAL_P95_MS and not step.closed,
            )
        )
    return report
