"""What keeping sessions in a store costs a request: stateless minus stateful latency, next
to the raw round trip (GET + SET, redis-py) on the stateless lab's own store in the same run,
directly and through the lab's latency proxy (at 0 ms injected: what the proxy itself adds),
and the same difference with 20 ms injected into every store round trip.

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

from .common import ROOT, Report, Target, fmt, percentile, run_async
from .redis_probe import pairs
from .workers import MODES, lab_pair

USERS = 12
RATE = 40.0  # requests/s per lab: twice the default, for more samples behind each p99
PROBE_RATE = 100.0  # paced, so the probe itself adds little load
INJECTED_MS = 20.0
# With the delay, a request holds its worker's one slot 40 + 2 x 20 ms: 12.5 a second a
# worker. At RATE the three workers would queue, and the queue, not the store, would make
# the difference; at this rate they stay at about a quarter of that capacity.
INJECTED_RATE = 10.0


async def _labs_and_probe(
    seconds: float, warm: float, store_latency_ms: float = 0.0, rate: float = RATE
) -> tuple[dict[str, dict[str, float]], list[float], list[float], list[float]]:
    """The labs' latencies in a window, the probe's pairs (direct to the store) during it,
    then pairs back to back directly and through the proxy."""
    import redis

    async with lab_pair(users=USERS, rate=rate, store_latency_ms=store_latency_ms) as labs:
        store = labs["stateless"].store
        direct_url = f"redis://127.0.0.1:{store.port}/0"
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.redis_probe",
            "--url",
            direct_url,
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
        clients = [redis.Redis.from_url(u, socket_timeout=5) for u in (direct_url, store.url)]
        try:
            direct, proxied = [
                await asyncio.to_thread(pairs, client, count=500) for client in clients
            ]
        finally:
            for client in clients:
                client.close()
    return found, json.loads(out), direct, proxied


def run(quick: bool) -> Report:
    report = Report("latency", "Stateless minus stateful latency vs the store round trip")
    seconds, warm = (5.0, 1.0) if quick else (12.0, 2.0)
    labs, busy, direct, proxied = run_async(_labs_and_probe(seconds, warm), seconds + 90)
    slowed, *_ = run_async(_labs_and_probe(seconds, warm, INJECTED_MS, INJECTED_RATE), seconds + 90)

    report.say(
        f"A stateful and a stateless lab side by side (3 workers, {USERS} users, {RATE:g} "
        f"req/s each, sticky, 40 ms of work a request, one at a time), {seconds:g}s window "
        f"after {warm:g}s; the redis-py probe ({PROBE_RATE:g} pairs/s, own process) runs in "
        f"the same window on the stateless lab's own store. Then 500 pairs back to back, "
        f"directly and through the lab's proxy (0 ms injected); then the same two labs with "
        f"{INJECTED_MS:g} ms injected into every store round trip, at {INJECTED_RATE:g} req/s "
        "each (a synchronous worker holds its slot while it waits for the store, so at "
        f"{RATE:g} req/s the delay would also cut its capacity and the queue would dominate)."
    )
    report.say()
    rows: list[list[object]] = []
    for label, found in (("", labs), (f" (+{INJECTED_MS:g} ms)", slowed)):
        for mode in MODES:
            m = found[mode]
            rows.append(
                [
                    f"{mode} lab request{label}",
                    int(m["count"]),
                    m["p50_ms"],
                    m["p95_ms"],
                    m["p99_ms"],
                    int(m["failed"]),
                ]
            )
        diff = {
            p: found["stateless"][p] - found["stateful"][p] for p in ("p50_ms", "p95_ms", "p99_ms")
        }
        rows.append(
            [f"stateless - stateful{label}", "", diff["p50_ms"], diff["p95_ms"], diff["p99_ms"], ""]
        )
    for label, samples in (
        ("store GET+SET, during the labs", busy),
        ("store GET+SET, direct, after", direct),
        ("store GET+SET, through the proxy", proxied),
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
    plain = labs["stateless"]["p50_ms"] - labs["stateful"]["p50_ms"]
    injected = slowed["stateless"]["p50_ms"] - slowed["stateful"]["p50_ms"]
    report.targets.append(
        Target(
            "stateless - stateful latency p50",
            "compare with the store's GET+SET",
            f"{fmt(plain, 2)} ms vs a store pair {fmt(percentile(busy, 50), 2)} ms",
            None,
        )
    )
    report.targets.append(
        Target(
            f"the difference with {INJECTED_MS:g} ms injected",
            f"about {INJECTED_MS:g} ms x round trips per request (1 to 2)",
            f"{fmt(injected, 2)} ms",
            None,
        )
    )
    report.targets.append(
        Target(
            "the proxy's own cost at 0 ms (p50)",
            "small next to a pair",
            f"{fmt(percentile(proxied, 50) - percentile(direct, 50), 3)} ms",
            None,
        )
    )
    return report
