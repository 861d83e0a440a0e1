"""How the lab host's memory grows while a lab runs at full load: a bounded soak.

The real path, as bench/labs.py: `manage.py runlabs` in its own process, one lab created
with lab.create on the Channels layer (3 workers, 50 users, 200 requests/s: the start
form's maximum), watched by a subscriber here that renews its viewer lease as a page would
(so the host takes its 5 snapshots a second, and never closes the lab as unwatched). The
host's RSS is sampled every few seconds after a warm-up; the figure is its growth in MB a
minute (least-squares slope over the samples, and end minus start). Issue 13 found ~1.75
MB/min, linear, from keeping every latency sample of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from .common import Report, Stack, Target, fmt, require_import, run_async
from .labs import Subscriber

MINUTES = 10.0  # the soak; `python -m bench soak --soak-minutes N` changes it
QUICK_MINUTES = 1.0
WARMUP = 15.0  # seconds before the first sample: workers up, users logged in, buffers sized
SAMPLE_EVERY = 5.0
# The load the issue soaked at, served, not queued: 5 ms of work, 8 requests at once per
# worker (1,600 requests/s a worker), so the host carries the full 200 requests/s.
CONFIG = {
    "workers": 3,
    "users": 50,
    "rate": 200.0,
    "sticky": True,
    "work_ms": 5.0,
    "worker_concurrency": 8,
}
GOAL_MB_PER_MIN = 0.2
CLOSE_WAIT = 120.0  # the host closes an unwatched lab after 60 s


@dataclass
class Soak:
    samples: list[tuple[float, float]]  # (minutes since the first sample, host RSS in MB)
    requests: int  # the lab's requests ok between the first and the last sample
    failed: int
    elapsed: float  # seconds between the snapshots those counts come from
    closed: str | None  # why the lab closed before its end, if it did
    errors: list[str]
    after_close: float | None  # host RSS in MB once the lab closed (None: it did not)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


async def _soak(redis_url: str, host_pid: int, seconds: float) -> Soak:
    import psutil

    core = require_import("channels_redis.core", "channels-redis is not installed")
    protocol = require_import("playground.labprotocol", "the lab host is missing")
    layer = core.RedisChannelLayer(hosts=[redis_url], capacity=1000)
    sub = Subscriber(layer, await layer.new_channel(), protocol.HOST_CHANNEL)
    host = psutil.Process(host_pid)
    tasks = [asyncio.create_task(sub.receive_loop()), asyncio.create_task(sub.probe_loop())]
    samples: list[tuple[float, float]] = []  # (minutes since the first sample, RSS MB)
    try:
        lab = await sub.create("stateful", CONFIG)
        async with asyncio.timeout(40):
            await lab.running.wait()
        await asyncio.sleep(WARMUP)
        first = lab.arrivals[-1]
        began = time.monotonic()
        while True:
            now = time.monotonic() - began
            samples.append((now / 60, host.memory_info().rss / 1e6))
            if now >= seconds or lab.closed:
                break
            await asyncio.sleep(min(SAMPLE_EVERY, seconds - now))
        last = lab.arrivals[-1]
        early, errors = lab.closed, list(sub.errors)
        # Stop watching: the host closes the lab idle_timeout (60 s) later; its RSS then
        # says what closing the lab gave back.
        tasks[1].cancel()
        await layer.send(
            protocol.HOST_CHANNEL,
            {"type": "lab.detach", "lab_id": lab.lab_id, "reply_channel": sub.channel},
        )
        after_close = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await lab.ended.wait()  # sent once the lab's processes are reaped
                after_close = host.memory_info().rss / 1e6
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await layer.close_pools()
    return Soak(
        samples=samples,
        requests=last.ok - first.ok,
        failed=last.failed - first.failed,
        elapsed=last.at - first.at,
        closed=early,
        errors=errors,
        after_close=after_close,
    )


def run(quick: bool, minutes: float | None = None) -> Report:
    minutes = minutes if minutes is not None else (QUICK_MINUTES if quick else MINUTES)
    report = Report("soak", "Lab host RSS growth while a lab runs at 200 requests/s")
    with Stack("bench-soak-") as stack:
        redis = stack.redis()
        env = stack.site_env(redis.url)
        host, _ = stack.labhost(env, redis.url)
        found = run_async(_soak(redis.url, host.pid, minutes * 60), minutes * 60 + CLOSE_WAIT + 120)
    samples = found.samples
    (_, start_mb), (end_min, end_mb) = samples[0], samples[-1]
    slope = _slope(samples)
    elapsed = found.elapsed
    short = " (a short run: read the slope with care)" if minutes < MINUTES else ""
    report.say(
        f"One lab of 3 workers, 50 users, 200 req/s in `manage.py runlabs`, watched (5 "
        f"snapshots/s); host RSS sampled every {SAMPLE_EVERY:g}s for {end_min:.1f} min after a "
        f"{WARMUP:g}s warm-up{short}."
    )
    report.say(
        "Then the subscriber stops watching; the host closes the lab 60 s later (no viewer), "
        "and its RSS is read again: what closing the lab gave back."
    )
    report.say()
    report.table(
        [
            "minutes",
            "RSS start MB",
            "RSS end MB",
            "MB/min (slope)",
            "MB/min (end-start)",
            "req/s",
            "failed",
            "RSS MB, lab closed",
        ],
        [
            [
                end_min,
                start_mb,
                end_mb,
                slope,
                (end_mb - start_mb) / end_min if end_min else 0.0,
                found.requests / elapsed if elapsed else 0.0,
                found.failed,
                found.after_close if found.after_close is not None else "-",
            ]
        ],
        digits=2,
    )
    if found.closed:
        report.say(f"the lab closed early: {found.closed}")
    if found.errors:
        report.say(f"errors from the host: {found.errors[:3]}")
    report.targets.append(
        Target(
            "lab host RSS growth at 200 req/s",
            f"<= {GOAL_MB_PER_MIN} MB/min (was ~1.75)",
            f"{fmt(slope, 2)} MB/min over {end_min:.1f} min ({fmt(start_mb)} -> "
            f"{fmt(end_mb)} MB){short}",
            None if short else slope <= GOAL_MB_PER_MIN,  # warm-up weighs on a short run
        )
    )
    return report
