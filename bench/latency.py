"""What keeping sessions in Redis costs a request: stateless minus stateful latency, next to
the raw Redis round trip (GET + SET, redis-py) measured on the same Redis in the same run.

Both labs run side by side in this process with the same users and rate, so the machine's
noise hits both; their latencies are the engine's own (every request a virtual user sent,
through the balancer; percentiles from its latency histograms, within 1/64 of the exact
ones: about 0.02 ms at 1.5 ms).
"""

from __future__ import annotations

import asyncio
import json
import sys

from config.lifeline import die_with_parent

from .common import ROOT, Report, Stack, Target, fmt, percentile, run_async
from .redis_probe import pairs
from .workers import MODES, lab_pair

USERS = 12
RATE = 40.0  # requests/s per lab: twice the default, for more samples behind each p99
PROBE_RATE = 100.0  # paced, so the probe itself adds little load


async def _labs_and_probe(
    redis_url: str, seconds: float, warm: float
) -> tuple[dict[str, dict[str, float]], list[float]]:
    async with lab_pair(redis_url, users=USERS, rate=RATE) as labs:
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.redis_probe",
            "--url",
            redis_url,
            "--seconds",
            str(seconds),
            "--rate",
            str(PROBE_RATE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )
        try:
            assert probe.stdin is not None and probe.stdout is not None
            async with asyncio.timeout(30):
                ready = await probe.stdout.readline()
            if ready.strip() != b"ready":
                raise RuntimeError(f"the Redis probe did not start: {ready!r}")
            await asyncio.sleep(warm)
            start = {mode: lab.now() for mode, lab in labs.items()}
            failed = {mode: lab.metrics.requests_failed for mode, lab in labs.items()}
            probe.stdin.write(b"go\n")
            await probe.stdin.drain()
            await asyncio.sleep(seconds)
            found = {}
            for mode, lab in labs.items():
                found[mode] = dict(lab.metrics.latency_between(start[mode], lab.now()))
                found[mode]["failed"] = lab.metrics.requests_failed - failed[mode]
            async with asyncio.timeout(30):
                out = await probe.stdout.read()
            await probe.wait()
        finally:
            if probe.returncode is None:
                probe.kill()
                await probe.wait()
    return found, json.loads(out)


def run(quick: bool) -> Report:
    import redis

    report = Report("latency", "Stateless minus stateful latency vs the Redis round trip")
    seconds, warm = (5.0, 1.0) if quick else (12.0, 2.0)
    with Stack("bench-latency-") as stack:
        server = stack.redis()
        labs, busy = run_async(_labs_and_probe(server.url, seconds, warm), seconds + 90)
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        try:
            pairs(client, count=200)  # warm-up
            idle = pairs(client, count=2000)
        finally:
            client.close()

    report.say(
        f"A stateful and a stateless lab side by side (3 workers, {USERS} users, {RATE:g} "
        f"req/s each, sticky), {seconds:g}s window after {warm:g}s; the redis-py probe "
        f"({PROBE_RATE:g} pairs/s, own process) runs in the same window on the same Redis."
    )
    report.say()
    rows: list[list[object]] = []
    for mode in MODES:
        m = labs[mode]
        rows.append(
            [
                f"{mode} lab request",
                int(m["count"]),
                m["p50_ms"],
                m["p95_ms"],
                m["p99_ms"],
                int(m["failed"]),
            ]
        )
    diff = {p: labs["stateless"][p] - labs["stateful"][p] for p in ("p50_ms", "p95_ms", "p99_ms")}
    rows.append(["stateless - stateful", "", diff["p50_ms"], diff["p95_ms"], diff["p99_ms"], ""])
    for label, samples in (
        ("Redis GET+SET, during the labs", busy),
        ("Redis GET+SET, idle, after", idle),
    ):
        rows.append(
            [
                label,
                len(samples),
                percentile(samples, 50),
                percentile(samples, 95),
                percentile(samples, 99),
                "",
            ]
        )
    report.table(["what", "count", "p50 ms", "p95 ms", "p99 ms", "failed"], rows, digits=2)
    report.targets.append(
        Target(
            "stateless - stateful latency p50 / p99",
            "compare with Redis GET+SET",
            f"{fmt(diff['p50_ms'], 2)} / {fmt(diff['p99_ms'], 2)} ms vs Redis pair "
            f"{fmt(percentile(busy, 50), 2)} / {fmt(percentile(busy, 99), 2)} ms",
            None,
        )
    )
    return report
