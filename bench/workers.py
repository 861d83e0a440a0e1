"""Worker processes: spawn-to-ready through the engine's own Supervisor, and memory per worker.

Spawn-to-ready is the engine's figure (WorkerProcess.spawn_ms): from just before the exec
to the worker's "READY <port>" line, which it prints once its socket listens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from .common import Report, Skip, Stack, Target, fmt, percentile, require_import, run_async

MODES = ("stateful", "stateless")
GOAL_SPAWN_P50_MS = 80.0
WARMUP_SPAWNS = 1  # the first start of a run may compile bytecode; it is shown apart


# -- spawn-to-ready ---------------------------------------------------------------------------


async def _spawn_series(redis_url: str, count: int) -> dict[str, list[float]]:
    process = require_import("playground.lab.process", "the engine's process API is missing")
    supervisors = {
        mode: process.Supervisor(
            process.WorkerSpec(mode=mode, redis_url=redis_url, prefix="bench:spawn:"),
            emit=lambda kind, text: None,
            on_ready=lambda worker: None,
            on_exit=lambda worker: None,
        )
        for mode in MODES
    }
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        slots = {mode: sup.add("worker-1") for mode, sup in supervisors.items()}
        # Interleaved, so a burst of load from elsewhere hits both modes alike.
        for _ in range(WARMUP_SPAWNS + count):
            for mode, sup in supervisors.items():
                worker = slots[mode]
                await sup.spawn(worker)
                times[mode].append(float(worker.spawn_ms))
                await sup.kill(worker, why="close")  # one at a time: nothing else competes
    finally:
        for sup in supervisors.values():
            await sup.close()
    return times


def run_spawn(quick: bool) -> Report:
    report = Report("spawn", "Worker spawn-to-ready (engine's Supervisor.spawn)")
    count = 10 if quick else 30
    with Stack("bench-spawn-") as stack:
        redis = stack.redis()
        times = run_async(_spawn_series(redis.url, count), limit=30 + count * 4)
    report.say(
        f"{count} spawns per mode after {WARMUP_SPAWNS} warm-up, interleaved, one worker "
        f"alive at a time; playground.lab.process.Supervisor.spawn, spawn_ms"
    )
    report.say()
    rows = []
    for mode in MODES:
        first, measured = times[mode][:WARMUP_SPAWNS], times[mode][WARMUP_SPAWNS:]
        rows.append(
            [
                mode,
                len(measured),
                percentile(measured, 50),
                percentile(measured, 95),
                min(measured),
                max(measured),
                first[0] if first else float("nan"),
            ]
        )
        p50 = percentile(measured, 50)
        report.targets.append(
            Target(
                f"{mode} spawn-to-ready p50",
                f"<= {GOAL_SPAWN_P50_MS:g} ms",
                f"{fmt(p50)} ms (p95 {fmt(percentile(measured, 95))} ms)",
                p50 <= GOAL_SPAWN_P50_MS,
            )
        )
    report.table(["mode", "spawns", "p50 ms", "p95 ms", "min ms", "max ms", "first ms"], rows)
    return report


# -- a stateful and a stateless lab side by side (also used by bench.latency) ----------------


@contextlib.asynccontextmanager
async def lab_pair(**config: Any) -> AsyncIterator[dict[str, Any]]:
    """A stateful and a stateless lab with the same settings, both running, always closed.
    The stateless one has its own store (a redis-server of the lab's)."""
    lab_module = require_import("playground.lab", "the lab engine is missing")
    labs = {
        mode: lab_module.Lab(lab_module.LabConfig(lab_id=f"bench-{mode}", mode=mode, **config))
        for mode in MODES
    }
    try:
        for lab in labs.values():
            try:
                await lab.start()
            except lab_module.LabError as exc:
                if "not implemented" in str(exc):
                    raise Skip(f"the lab engine cannot start a lab yet: {exc}") from None
                raise
        yield labs
    finally:
        await asyncio.gather(*(lab.close() for lab in labs.values()), return_exceptions=True)


# -- memory per worker ------------------------------------------------------------------------


async def _memory(seconds: float) -> dict[str, list[dict[str, float]]]:
    import psutil

    found: dict[str, list[dict[str, float]]] = {}
    async with lab_pair() as labs:
        await asyncio.sleep(seconds)
        for mode, lab in labs.items():
            sessions = {w["pid"]: w["sessions"] for w in lab.snapshot()["workers"]}
            found[mode] = []
            for pid in lab.supervisor.live_pids():  # workers only, not a lab's store
                try:
                    info = psutil.Process(pid).memory_full_info()
                except psutil.Error:
                    continue
                found[mode].append(
                    {
                        "uss": info.uss / 2**20,
                        "rss": info.rss / 2**20,
                        "sessions": float(sessions.get(pid, 0)),
                    }
                )
    return found


def run_memory(quick: bool) -> Report:
    report = Report("memory", "Memory per worker process (psutil USS and RSS)")
    seconds = 3.0 if quick else 8.0
    found = run_async(_memory(seconds), limit=seconds + 60)
    report.say(
        f"One lab per mode side by side (3 workers, 12 users, 20 req/s, sticky), read after "
        f"{seconds:g}s of traffic. USS: memory only that process holds (what killing it frees)."
    )
    report.say()
    rows = []
    for mode in MODES:
        workers = found.get(mode, [])
        if not workers:
            rows.append([mode, 0, "-", "-", "-", "-", "-"])
            continue
        uss = [w["uss"] for w in workers]
        rss = [w["rss"] for w in workers]
        rows.append(
            [
                mode,
                len(workers),
                sum(uss) / len(uss),
                max(uss),
                sum(rss) / len(rss),
                max(rss),
                int(sum(w["sessions"] for w in workers)),
            ]
        )
    report.table(
        ["mode", "workers", "USS MiB avg", "USS max", "RSS MiB avg", "RSS max", "sessions held"],
        rows,
        digits=2,
    )
    mean = {
        mode: (
            fmt(sum(w["uss"] for w in found[mode]) / len(found[mode]), 2),
            fmt(sum(w["rss"] for w in found[mode]) / len(found[mode]), 2),
        )
        for mode in MODES
        if found.get(mode)
    }
    if mean:
        report.targets.append(
            Target(
                "memory per worker, USS (RSS)",
                "no target; figures",
                "; ".join(f"{mode} {uss} ({rss}) MiB" for mode, (uss, rss) in mean.items()),
                None,
            )
        )
    return report
