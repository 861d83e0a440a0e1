"""A worker's end: draining on SIGTERM, and death with its parent."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from tests.conftest import ROOT
from tests.playground.worker.conftest import Worker


def test_sigterm_drains_the_request_in_flight_then_exits_0(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker("--name", "w", "--mode", "stateful", "--work-ms", "400")
    result: dict[str, Any] = {}

    def slow_login() -> None:
        status, data, response = worker.call("POST", "/login", {"user": "slow"})
        result.update(status=status, connection=response.getheader("Connection"))

    thread = threading.Thread(target=slow_login)
    thread.start()
    deadline = time.monotonic() + 5
    while worker.health()["inflight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    idle = worker.connect()
    idle.connect()  # a kept-alive connection with no request: closed by the drain

    worker.process.send_signal(signal.SIGTERM)

    thread.join(timeout=5)
    assert result == {"status": 200, "connection": "close"}
    assert worker.process.wait(timeout=5) == 0
    with pytest.raises(ConnectionRefusedError):
        worker.connect().connect()
    idle.close()


def test_the_watchdog_ends_a_worker_whose_parent_died_without_pdeathsig() -> None:
    # A worker sets its own PR_SET_PDEATHSIG, which would end it here by itself: the
    # middle process runs only the watchdog, in a child with no lifeline at all, so only
    # the watchdog (its parent's pidfd, or getppid()) can make it exit.
    middle_code = (
        "import os, subprocess, sys, time;"
        # The parent's pid is read before the line that lets the middle die: read after,
        # it could already be the reaper's, which the watchdog would then wait on forever.
        "code = 'import asyncio, os; from playground.worker.life import watchdog;"
        " parent = os.getppid(); print(flush=True); asyncio.run(watchdog(parent))';"
        "p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE);"
        "p.stdout.readline(); print(p.pid, flush=True); time.sleep(60)"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", middle_code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert middle.stdout is not None
    worker_pid = int(middle.stdout.readline())
    try:
        assert psutil.pid_exists(worker_pid)
    finally:
        middle.kill()
        middle.wait()
        middle.stdout.close()
    # A bound, not a timing claim: on a loaded 2-core machine the child may wait its turn.
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            if psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    else:
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail("the watchdog outlived its parent")


def _pooled() -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-S", "-m", "playground.worker", "--pooled"]
        + ["--parent-pid", str(os.getpid())],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"WAITING\n"
    return process


def test_a_warm_worker_runs_the_flags_it_is_handed_on_stdin() -> None:
    process = _pooled()
    assert process.stdin is not None and process.stdout is not None
    try:
        flags = ["--name", "w9", "--mode", "stateful", "--concurrency", "4"]
        process.stdin.write(json.dumps(flags).encode() + b"\n")
        process.stdin.close()
        line = process.stdout.readline()
        assert line.startswith(b"READY ")
        conn = http.client.HTTPConnection("127.0.0.1", int(line.split()[1]), timeout=5)
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        conn.close()
        assert (health["name"], health["mode"], health["concurrency"]) == ("w9", "stateful", 4)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        assert process.stderr is not None
        process.stderr.close()


def test_a_warm_worker_let_go_exits_0_and_a_bad_claim_is_refused() -> None:
    let_go = _pooled()
    _, err = let_go.communicate(b"", timeout=10)  # its stdin closed: the pool let it go
    assert let_go.returncode == 0, err
    bad = _pooled()
    _, err = bad.communicate(b'{"name": "w"}\n', timeout=10)
    assert bad.returncode == 1 and b"a claim is a JSON list of flags" in err
