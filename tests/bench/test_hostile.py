"""bench/hostile.py, the hostile run of issue 13, once per test run: the site as `make run`
starts it, every probe, and the check that nothing broke. Real processes throughout."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_hostile_run_breaks_nothing() -> None:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "hostile", "--no-docs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "BROKE" not in output, output
    assert "Traceback" not in output, output
    # Every probe ran and held; "the launcher's log" is the check that its log holds no
    # traceback, unretrieved task exception or send on a closed protocol.
    for probe in ["hostile frames", "cookie-less flood", "SIGKILL of the embedded redis-server"]:
        assert f"held: {probe}" in output, output
    for probe in ["SIGKILL of the lab host", "Ctrl-C", "no process left", "the launcher's log"]:
        assert f"held: {probe}" in output, output
