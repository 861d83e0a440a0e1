"""How many labs one lab host, and two on the same machine, hold while their 5 Hz updates
still arrive in time.

The real path: `manage.py runlabs` in its own process (or two, the labs placed on them in
turn, as the web tier's least-loaded placement does with equal hosts), labs created with
lab.create on the Channels layer (Redis) as the web tier does, and this process subscribed
to every lab's group as a viewer. Labs are added in steps; at each step the update lag is measured:
the time from the host taking a snapshot to that snapshot arriving here.

The host's messages carry no send time, but every snapshot carries `uptime`, read from
time.monotonic() when the snapshot is taken, minus the lab's (unknown) start instant. On
Linux CLOCK_MONOTONIC is one clock for every process, so each lab's start instant is
pinned down like an NTP offset: a lab.attach sent at t0 and answered at t1 with a
snapshot of uptime u bounds it to [t0 - u, t1 - u], and every snapshot arriving at t with
uptime u bounds it from above by t - u (lag is never negative). The tightest bounds win;
lag is measured from the middle and the half-width is printed as the uncertainty.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from .common import (
    Report,
    Skip,
    Stack,
    Target,
    cpu_seconds,
    fmt,
    percentile,
    require_import,
    run_async,
)

STEPS = (5, 10, 20, 30, 40, 50)
QUICK_STEPS = (5, 10, 20)
# Two hosts on the same 2 cores: the question is whether a second process holds more labs
# than one (one event loop per host), not whether the cores grow.
FLEET_STEPS = (10, 20, 30, 40, 50, 60, 80)
QUICK_FLEET_STEPS = (10, 20, 30)
BUDGET = 120.0  # seconds for all steps (not counting server start and stop)
QUICK_BUDGET = 45.0
GOAL_P95_MS = 100.0
PUSH_INTERVAL = 0.2  # the host's HostLimits.push_interval: 5 updates a second
PROBE_EVERY = 3.0  # lab.attach per lab: renews the viewer lease and bounds the clock
ROUNDING = 0.0005  # uptime is rounded to the millisecond
CONFIG = {"workers": 3, "users": 12, "rate": 20.0, "sticky": True}  # the start form's defaults


@dataclass
class Arrival:
    at: float  # time.monotonic() here
    wall: float  # time.time() here
    uptime: float
    sent_at: float | None  # a send timestamp, if the host ever adds one (time.time())
    ok: int
    failed: int


@dataclass(eq=False)
class Watched:
    lab_id: str
    owner: str
    mode: str
    created: asyncio.Future[None]
    running: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # lab.closed arrived
    arrivals: list[Arrival] = field(default_factory=list)
    lower: float = -math.inf  # bounds of the lab's start instant on our monotonic clock
    upper: float = math.inf
    probes_out: int = 0
    probe_sent: float | None = None  # only while exactly one probe is unanswered
    last_probe: float = 0.0
    closed: str | None = None
    host: str = ""  # the lab host's channel

    @property
    def group(self) -> str:
        return f"lab.{self.lab_id}"

    def offset(self) -> tuple[float, float]:
        """(start instant, uncertainty) in seconds."""
        if math.isinf(self.lower):
            return self.upper, math.nan  # no probe answered: lag above the fastest one
        return (self.lower + self.upper) / 2, (self.upper - self.lower) / 2


@dataclass
class Step:
    labs: int
    start: float
    end: float
    host_cpu: float
    workers_cpu: float
    own_cpu: float
    machine_cpu: float
    not_running: int


class Subscriber:
    """One viewer of many labs: receives their snapshots on one channel of the layer."""

    def __init__(self, layer: Any, channel: str, host: str, *more: str) -> None:
        self.layer = layer
        self.channel = channel
        self.host = host
        self.hosts = itertools.cycle((host, *more))  # new labs go to each in turn
        self.labs: dict[str, Watched] = {}
        self.errors: list[str] = []

    async def receive_loop(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            at, wall = time.monotonic(), time.time()
            lab = self.labs.get(str(message.get("lab_id")))
            if lab is not None:
                self._dispatch(lab, message, at, wall)

    def _dispatch(self, lab: Watched, message: dict[str, Any], at: float, wall: float) -> None:
        kind = message.get("type")
        if kind == "lab.created" and not lab.created.done():
            lab.created.set_result(None)
        elif kind in ("lab.error", "lab.refused", "lab.closed"):
            text = str(message.get("message") or message.get("reason") or kind)
            if not lab.created.done():
                lab.created.set_exception(RuntimeError(text))
            if kind == "lab.closed":
                lab.closed = text
                lab.ended.set()
            self.errors.append(f"{lab.lab_id}: {text}")
        elif kind == "lab.attached":
            sent, lab.probe_sent = lab.probe_sent, None
            lab.probes_out = max(0, lab.probes_out - 1)
            uptime = self._uptime(message.get("snapshot"))
            if sent is not None and uptime is not None:
                lab.lower = max(lab.lower, sent - uptime - ROUNDING)
                lab.upper = min(lab.upper, at - uptime + ROUNDING)
        elif kind == "lab.snapshot":
            snapshot = message.get("snapshot")
            uptime = self._uptime(snapshot)
            if uptime is None or not isinstance(snapshot, dict):
                return
            metrics = snapshot.get("metrics", {})
            sent_at = message.get("sent_at", snapshot.get("sent_at"))
            lab.arrivals.append(
                Arrival(
                    at,
                    wall,
                    uptime,
                    float(sent_at) if isinstance(sent_at, int | float) else None,
                    int(metrics.get("requests_ok", 0)),
                    int(metrics.get("requests_failed", 0)),
                )
            )
            lab.upper = min(lab.upper, at - uptime + ROUNDING)
            lab.running.set()

    @staticmethod
    def _uptime(snapshot: Any) -> float | None:
        if not isinstance(snapshot, dict) or snapshot.get("state") != "running":
            return None
        uptime = snapshot.get("uptime")
        return float(uptime) if isinstance(uptime, int | float) and uptime > 0 else None

    async def attach(self, lab: Watched) -> None:
        lab.probes_out += 1
        lab.probe_sent = time.monotonic() if lab.probes_out == 1 else None
        lab.last_probe = time.monotonic()
        await self.layer.send(
            lab.host,
            {
                "type": "lab.attach",
                "lab_id": lab.lab_id,
                "owner": lab.owner,
                "reply_channel": self.channel,
            },
        )

    async def probe_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for lab in list(self.labs.values()):
                stale = lab.probes_out and now - lab.last_probe > 10  # lost: ask again
                if (
                    lab.created.done()
                    and now - lab.last_probe >= PROBE_EVERY
                    and (not lab.probes_out or stale)
                ):
                    await self.attach(lab)

    async def create(self, mode: str, config: dict[str, Any] | None = None) -> Watched:
        lab_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
        # One owner and one client address per lab: the host keeps at most two labs per
        # owner, and its last places for addresses that run no lab yet.
        lab = Watched(
            lab_id,
            secrets.token_urlsafe(16),
            mode,
            asyncio.get_running_loop().create_future(),
            host=next(self.hosts),
        )
        self.labs[lab_id] = lab
        await self.layer.group_add(lab.group, self.channel)
        await self.layer.send(
            lab.host,
            {
                "type": "lab.create",
                "lab_id": lab_id,
                "owner": lab.owner,
                "config": {"mode": mode, **(CONFIG if config is None else config)},
                "client": f"bench-{lab_id}",
                "reply_channel": self.channel,
            },
        )
        async with asyncio.timeout(15):
            await lab.created
        await asyncio.sleep(random.uniform(0, 0.05))
        await self.attach(lab)  # become a viewer: the host pushes only to watched labs
        return lab


def _lags(sub: Subscriber, start: float, end: float, labs: int) -> dict[str, Any]:
    """Lag (ms) of every snapshot that arrived in [start, end), and what goes with it."""
    lags: list[float] = []
    gaps: list[float] = []
    bounds: list[float] = []
    ok = failed = arrived = 0
    exact = False
    for lab in sub.labs.values():
        offset, uncertainty = lab.offset()
        if not math.isnan(uncertainty):
            bounds.append(uncertainty * 1000)
        inside = [a for a in lab.arrivals if start <= a.at < end]
        arrived += len(inside)
        for a in inside:
            if a.sent_at is not None:
                exact = True
                lags.append((a.wall - a.sent_at) * 1000)
            else:
                lags.append((a.at - (offset + a.uptime)) * 1000)
        gaps += [(b.at - a.at) * 1000 for a, b in itertools.pairwise(inside)]
        before = [a for a in lab.arrivals if a.at < start]
        if inside and before:
            ok += inside[-1].ok - before[-1].ok
            failed += inside[-1].failed - before[-1].failed
    return {
        "lags": lags,
        "gaps": gaps,
        "bound_ms": percentile(bounds, 50) if bounds else math.nan,
        "per_lab_hz": arrived / labs / (end - start) if labs else 0.0,
        "rps": ok / (end - start),
        "failed": failed,
        "exact": exact,
    }


async def _run(
    redis_url: str,
    hosts: dict[str, int],
    steps: tuple[int, ...],
    budget: float,
    settle: float,
    window: float,
) -> tuple[list[Step], Subscriber, str]:
    import psutil

    core = require_import("channels_redis.core", "channels-redis is not installed")
    require_import("playground.labprotocol", "the lab host is missing")
    layer = core.RedisChannelLayer(hosts=[redis_url], capacity=1000)
    sub = Subscriber(layer, await layer.new_channel(), *hosts)
    processes = [psutil.Process(pid) for pid in hosts.values()]
    me = psutil.Process(os.getpid())
    tasks = [asyncio.create_task(sub.receive_loop()), asyncio.create_task(sub.probe_loop())]
    done: list[Step] = []
    stopped = "all steps ran"
    began = time.monotonic()
    modes = itertools.cycle(("stateful", "stateless"))
    try:
        for target in steps:
            spent = time.monotonic() - began
            if done and spent + settle + window + 10 > budget:
                stopped = f"stopped before {target} labs: time budget of {budget:g}s"
                break
            new = target - len(sub.labs)
            try:
                created = await asyncio.gather(*(sub.create(next(modes)) for _ in range(new)))
                async with asyncio.timeout(40):
                    await asyncio.gather(*(lab.running.wait() for lab in created))
            except (TimeoutError, RuntimeError) as exc:
                stopped = f"stopped at {target} labs: labs did not all start ({exc or 'timeout'})"
                break
            await asyncio.sleep(settle)
            workers = [w for host in processes for w in host.children(recursive=True)]
            workers_cpu = cpu_seconds(workers)
            host_cpu, own_cpu = cpu_seconds(processes), me.cpu_times()
            psutil.cpu_percent()
            start = time.monotonic()
            await asyncio.sleep(window)
            end = time.monotonic()
            elapsed = end - start
            step = Step(
                labs=len(sub.labs),
                start=start,
                end=end,
                host_cpu=(cpu_seconds(processes) - host_cpu) / elapsed * 100,
                workers_cpu=(cpu_seconds(workers) - workers_cpu) / elapsed * 100,
                own_cpu=_cpu(me.cpu_times(), own_cpu) / elapsed * 100,
                machine_cpu=psutil.cpu_percent(),
                not_running=sum(1 for lab in sub.labs.values() if lab.closed),
            )
            done.append(step)
            lag95 = percentile(_lags(sub, start, end, len(sub.labs))["lags"], 95)
            print(f"  {step.labs} labs: update lag p95 {fmt(lag95)} ms", flush=True)
            if not lag95 <= GOAL_P95_MS:
                stopped = f"stopped after {step.labs} labs: the first step over the target"
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await layer.close_pools()
    return done, sub, stopped


def _cpu(now: Any, before: Any) -> float:
    return float((now.user - before.user) + (now.system - before.system))


def _table(report: Report, done: list[Step], sub: Subscriber) -> tuple[Step | None, str, bool]:
    """The table of one run of steps; (best step that met the target, first miss, exact)."""
    rows = []
    best: Step | None = None
    missed = ""
    exact = False
    for step in done:
        found = _lags(sub, step.start, step.end, step.labs)
        exact = exact or found["exact"]
        lags, gaps = found["lags"], found["gaps"]
        met = percentile(lags, 95) <= GOAL_P95_MS
        if met and (best is None or step.labs > best.labs):
            best = step
        if not met and not missed:
            missed = f"; at {step.labs} labs p95 {fmt(percentile(lags, 95))} ms"
        rows.append(
            [
                step.labs,
                percentile(lags, 50),
                percentile(lags, 95),
                percentile(lags, 99),
                found["bound_ms"],
                found["per_lab_hz"],
                percentile(gaps, 95),
                found["rps"],
                found["failed"],
                step.host_cpu,
                step.workers_cpu,
                (step.host_cpu + step.workers_cpu) / step.labs,
                step.machine_cpu,
                step.own_cpu,
                "yes" if met else "no",
            ]
        )
    report.table(
        [
            "labs",
            "lag p50",
            "lag p95",
            "lag p99",
            "+/- ms",
            "upd/s/lab",
            "gap p95",
            "req/s",
            "failed",
            "host %",
            "workers %",
            "% per lab",
            "machine %",
            "bench %",
            "met",
        ],
        rows,
    )
    report.say(
        "lag and gap in ms; +/-: half-width of the clock bound (median over labs); "
        "gap: time between two updates of a lab (200 ms when on time); host %: the lab "
        "host processes only; workers %: all their worker processes together (100 = one "
        "core); % per lab: (host % + workers %) / labs, what one lab costs; machine %: all "
        "cores, others' too."
    )
    return best, missed, exact


def _measure(quick: bool, hosts: int, steps: tuple[int, ...]) -> tuple[list[Step], Subscriber, str]:
    budget = QUICK_BUDGET if quick else BUDGET
    settle, window = (1.0, 3.0) if quick else (2.0, 6.0)
    with Stack("bench-labs-") as stack:
        redis = stack.redis()
        env = stack.site_env(redis.url)
        names = [f"labhost-{n + 1}" if n else "labhost" for n in range(hosts)]
        pids = {
            name: stack.labhost(env, redis.url, max_labs=max(steps), name=name)[0].pid
            for name in names
        }
        try:
            done, sub, stopped = run_async(
                _run(redis.url, pids, steps, budget, settle, window), budget + 120
            )
        except TimeoutError as exc:
            raise RuntimeError(f"the labs benchmark did not finish: {exc}") from None
    if not done:
        raise Skip(f"no step could be measured: {stopped}; {sub.errors[:3]}")
    return done, sub, stopped


def run(quick: bool) -> Report:
    report = Report("labs", "Concurrent labs in 1 and 2 lab hosts with update lag p95 <= 100 ms")
    exact = False
    for hosts, steps in (
        (1, QUICK_STEPS if quick else STEPS),
        (2, QUICK_FLEET_STEPS if quick else FLEET_STEPS),
    ):
        done, sub, stopped = _measure(quick, hosts, steps)
        label = "1 lab host" if hosts == 1 else f"{hosts} lab hosts"
        report.say(
            f"{label}: labs of 3 workers, 12 users, 20 req/s (stateful and stateless in turn)"
            f"{', placed on each host in turn' if hosts > 1 else ''}; steps "
            f"{', '.join(map(str, steps))}; {stopped}."
        )
        best, missed, seen_exact = _table(report, done, sub)
        exact = exact or seen_exact
        if sub.errors:
            report.say(f"errors from the hosts: {len(sub.errors)}, e.g. {sub.errors[:3]}")
        report.targets.append(
            Target(
                f"labs held by {label} with update lag p95 <= 100 ms",
                "largest step measured",
                (f"{best.labs} labs" if best else f"none (first step: {done[0].labs} labs)")
                + missed,
                best is not None,
            )
        )
        report.say()
    settle, window = (1.0, 3.0) if quick else (2.0, 6.0)
    report.say(
        f"Each step measured for {window:g}s after {settle:g}s. lag: host takes a snapshot -> "
        "it arrives at a Channels-layer subscriber here."
    )
    if exact:
        report.say(
            "Lag is exact: arrival time here minus the `sent_at` (time.time()) the host puts "
            "in each `lab.snapshot`; +/- is the bound of the uptime method, unused."
        )
    else:
        report.say(
            "The host sends no send timestamp: lag comes from the snapshots' uptime "
            "(see bench/labs.py)."
        )
    return report
