"""Throughput against the number of workers under saturating load, next to the ideal line;
and what a lab's own store costs (its spawn, its memory).

Each run is a real stateless lab (playground.lab.scenario): 50 users asking 200
requests/s, more than six workers serve, each worker doing 40 ms of work a request, one at
a time (25 requests/s each: the ideal line is 25 x workers). The work is a wait, like a
database call, so on a 2-core machine it scales with workers, as I/O-bound workers do; CPU
work would stop scaling at the cores.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .common import Report, Target, fmt, run_async

USERS = 50
RATE = 200.0
WORK_MS = 40.0


async def _throughput(workers: int, seconds: float, warm: float) -> dict[str, Any]:
    from playground.lab import Lab, LabConfig

    lab = Lab(
        LabConfig(
            lab_id=f"bench-scaling-{workers}",
            mode="stateless",
            workers=workers,
            users=USERS,
            rate=RATE,
            work_ms=WORK_MS,
        )
    )
    try:
        await lab.start()
        await asyncio.sleep(warm)
        ok, failed, start = lab.metrics.requests_ok, lab.metrics.requests_failed, lab.now()
        await asyncio.sleep(seconds)
        window = lab.now() - start
        latency = lab.metrics.latency_between(start, lab.now())
        found: dict[str, Any] = {
            "rps": (lab.metrics.requests_ok - ok) / window,
            "failed": lab.metrics.requests_failed - failed,
            "p50_ms": latency["p50_ms"],
        }
        store = lab.store
        if store is not None and store.pid is not None:
            import psutil

            found["store_spawn_ms"] = store.spawn_ms
            found["store_rss_mb"] = psutil.Process(store.pid).memory_info().rss / 2**20
        return found
    finally:
        await lab.close()


def run(quick: bool) -> Report:
    report = Report("scaling", "Throughput by workers under saturating load, and the store")
    seconds, warm = (3.0, 1.0) if quick else (6.0, 1.5)
    rows: list[list[object]] = []
    found: dict[int, dict[str, Any]] = {}
    for workers in range(1, 7):
        found[workers] = run_async(_throughput(workers, seconds, warm), seconds + 60)
        m = found[workers]
        ideal = min(RATE, 1000 / WORK_MS * workers)
        rows.append(
            [workers, m["rps"], ideal, 100 * m["rps"] / ideal, m["p50_ms"], int(m["failed"])]
        )
    report.say(
        f"A stateless lab per row: {USERS} users asking {RATE:g} requests/s, {WORK_MS:g} ms of "
        f"work a request, one request at a time per worker; {seconds:g}s window after "
        f"{warm:g}s. Ideal: {1000 / WORK_MS:g} requests/s a worker."
    )
    report.say()
    report.table(["workers", "ok req/s", "ideal", "% of ideal", "p50 ms", "failed"], rows)
    report.say()
    spawn = [m["store_spawn_ms"] for m in found.values() if "store_spawn_ms" in m]
    rss = [m["store_rss_mb"] for m in found.values() if "store_rss_mb" in m]
    report.say(
        f"The lab's store (redis-server, fork + PR_SET_PDEATHSIG + exec): spawn to PONG "
        f"{fmt(min(spawn))}-{fmt(max(spawn))} ms; RSS under load {fmt(min(rss))}-"
        f"{fmt(max(rss))} MB."
    )
    ratio = found[6]["rps"] / found[1]["rps"] if found[1]["rps"] else 0.0
    report.targets.append(
        Target(
            "throughput 6 workers / 1 worker, saturated",
            "grows with workers (ideal 6x)",
            f"{fmt(ratio, 2)}x ({fmt(found[1]['rps'])} -> {fmt(found[6]['rps'])} req/s)",
            ratio > 1,
        )
    )
    return report
