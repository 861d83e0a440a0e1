"""A lab host that is SIGKILLed (no clean-up code runs) must leave no worker behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playground.lab.process import find_orphans

ROOT = Path(__file__).resolve().parents[3]
HOST = """
import asyncio, json, sys, threading
from playground.lab import Lab, LabConfig

async def main():
    lab = Lab(LabConfig(lab_id="host", workers=2, users=2))
    await lab.start()
    if "paused" in sys.argv:  # a stopped worker runs no watchdog: only the kernel can end it
        await lab.worker_pause("worker-1")
    print(json.dumps(lab.pids()), flush=True)
    await asyncio.sleep(60)

if sys.argv[1] == "thread":  # the lab's loop in a thread, as a host with threads may do
    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join()
else:
    asyncio.run(main())
"""


def sigkill_leaves_no_child(script: str, *args: str) -> None:
    """Run `script` as a lab host that prints the pids of its 2 children (JSON) once they
    run; SIGKILL it; they must all end by themselves."""
    host = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None
        pids = json.loads(host.stdout.readline())
        assert len(pids) == 2 and host.poll() is None
        assert set(pids) <= set(find_orphans(pids))  # they run now
    finally:
        os.kill(host.pid, signal.SIGKILL)
        host.wait()
        assert host.stdout is not None
        host.stdout.close()
    deadline = time.monotonic() + 2.0
    while find_orphans(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert find_orphans(pids) == []


@pytest.mark.parametrize(
    ("where", "worker_state"), [("main", "running"), ("thread", "running"), ("main", "paused")]
)
def test_sigkilled_lab_host_leaves_no_worker(where: str, worker_state: str) -> None:
    sigkill_leaves_no_child(HOST, where, worker_state)


def test_die_with_parent_alone_ends_a_child_when_its_spawner_dies() -> None:
    # A child with no watchdog of its own (sleep): only PR_SET_PDEATHSIG can end it.
    middle_code = (
        "import subprocess, time; from config.lifeline import die_with_parent;"
        "p = subprocess.Popen(['sleep', '30'], preexec_fn=die_with_parent);"
        "print(p.pid, flush=True); time.sleep(30)"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", middle_code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    try:
        assert find_orphans([child]) == [child]
    finally:
        middle.kill()
        middle.wait()
        middle.stdout.close()
    deadline = time.monotonic() + 2.0
    while find_orphans([child]) and time.monotonic() < deadline:
        time.sleep(0.02)
    leftover = find_orphans([child])
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert leftover == []


POOL = """
import asyncio, json
from playground.lab import WorkerPool

async def main():
    async with WorkerPool(2) as pool:
        while len(pool.pids()) < 2:
            await asyncio.sleep(0.05)
        print(json.dumps(pool.pids()), flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


def test_sigkilled_lab_host_leaves_no_warm_worker() -> None:
    sigkill_leaves_no_child(POOL)
