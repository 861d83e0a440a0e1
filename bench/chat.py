"""The reconnect storm of a chat kill, with and without jitter: 50 virtual chat users over 3
workers, one worker SIGKILLed, its users reconnecting through the balancer.

Every figure is the engine's own (Lab.snapshot()["chat"]): a reconnect is timed from the
moment a user saw its connection end to the `ready` frame of its new one; the peak is the
busiest 100 ms of reconnect attempts, as a rate per second; "all back" runs from the first
drop until the last dropped user is connected again; "handshake p95" is a successful
attempt's own time, from its connect to `ready`, without the backoff before it. A
(re)connect holds one of a worker's slots for its work (40 ms, one at a time: the default
capacity), so a herd queues in the workers and its handshakes take longer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from playground.lab import Lab, LabConfig

from .common import Report, Target, fmt, run_async

USERS = 50
WORKERS = 3
RATE = 20.0  # messages/s of all users together
WARM = 3.0  # seconds of chatting before the kill
BACK_WITHIN = 30.0  # a storm that takes longer is reported as it stands


async def _storm(mode: str, jitter: bool) -> dict[str, Any]:
    lab = Lab(
        LabConfig(
            lab_id=f"bench-chat-{mode}-{'j' if jitter else 'n'}",
            mode=mode,
            workload="chat",
            workers=WORKERS,
            users=USERS,
            rate=RATE,
            jitter=jitter,
        )
    )
    try:
        await lab.start()
        assert lab.chat is not None
        crowd = lab.chat
        await asyncio.sleep(WARM)
        await lab.worker_kill("worker-1")
        held = lab.disruptions[-1].connections_held
        deadline = lab.now() + BACK_WITHIN
        while lab.now() < deadline:
            summary = crowd.summary()
            if summary["reconnects"] >= held and summary["connected"] == USERS:
                break
            await asyncio.sleep(0.05)
        await crowd.settle(5.0)
        return {"held": held, **crowd.summary()}
    finally:
        await lab.close()


def run(quick: bool) -> Report:
    report = Report("chat", "Reconnect storm of a chat kill, with and without jitter")
    modes = ["stateless"] if quick else ["stateless", "stateful"]
    results: dict[tuple[str, bool], dict[str, Any]] = {}
    for mode in modes:
        for jitter in (False, True):
            results[mode, jitter] = run_async(_storm(mode, jitter), 120)
    report.say(
        f"{USERS} chat users in 3 rooms over {WORKERS} workers (40 ms of work per connect, "
        f"one at a time), {RATE:g} messages/s; worker-1 SIGKILLed after {WARM:g} s. Jitter "
        "on: full jitter, random(0, min(8 s, 1 s x 2^n)); off: at once."
    )
    report.say()
    rows: list[list[object]] = []
    for (mode, jitter), r in results.items():
        rows.append(
            [
                mode,
                "on" if jitter else "off",
                r["held"],
                r["reconnects"],
                r["reconnect_peak_per_s"],
                r["reconnect_p50_ms"],
                r["reconnect_p95_ms"],
                r["handshake_p95_ms"],
                r["reconnect_all_back_ms"],
                r["messages_missed"],
                r["history_lost"],
            ]
        )
    report.table(
        [
            "mode",
            "jitter",
            "dropped",
            "back",
            "peak/s",
            "p50 ms",
            "p95 ms",
            "handshake p95",
            "all back ms",
            "missed",
            "history lost",
        ],
        rows,
    )
    for mode in modes:
        herd, spread = results[mode, False], results[mode, True]
        report.targets.append(
            Target(
                f"{mode} storm: peak reconnects/s, all back, off vs on",
                "jitter lowers the peak",
                f"{fmt(herd['reconnect_peak_per_s'])}/s in {fmt(herd['reconnect_all_back_ms'])}"
                f" ms vs {fmt(spread['reconnect_peak_per_s'])}/s in "
                f"{fmt(spread['reconnect_all_back_ms'])} ms",
                herd["reconnect_peak_per_s"] > spread["reconnect_peak_per_s"],
            )
        )
    return report
