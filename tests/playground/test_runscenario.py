"""`manage.py runscenario`: a lab run headless, with a kill, reported as JSON."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django.core.management import CommandError, call_command

from playground.lab.process import find_orphans

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = {
    "requests_ok",
    "requests_failed",
    "sessions_lost",
    "carts_lost",
    "relogins",
    "sessions_held_by_killed",
    "latency_before_kill",
    "latency_after_kill",
    "spawn_to_ready_ms",
    "orphans_after",
    "kills",
}


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("runscenario", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
def test_json_report_of_a_kill(mode: str) -> None:
    report = run(
        "--mode",
        mode,
        "--workers",
        "2",
        "--users",
        "6",
        "--rate",
        "40",
        "--seconds",
        "3",
        "--kill",
        "worker-1@1.5",
        "--json",
    )
    assert set(report) >= REQUIRED
    assert report["orphans_after"] == 0
    assert set(report["spawn_to_ready_ms"]) == {"worker-1", "worker-2"}
    assert all(ms > 0 for ms in report["spawn_to_ready_ms"].values())
    assert report["requests_ok"] > 0
    assert report["latency_before_kill"]["count"] > 0
    assert report["latency_after_kill"]["count"] > 0
    [kill] = report["kills"]
    assert kill["worker"] == "worker-1" and kill["pid"] > 0
    assert kill["sessions_held_source"] in ("health_before_kill", "last_health_poll")
    if mode == "stateful":
        assert report["sessions_held_by_killed"] > 0
        assert report["sessions_lost"] > 0
    else:
        assert report["sessions_held_by_killed"] == 0
        assert report["sessions_lost"] == 0 and report["carts_lost"] == 0


CHAT_KEYS = {
    "connections_dropped",
    "reconnects",
    "reconnect_p50_ms",
    "reconnect_p95_ms",
    "reconnect_all_back_ms",
    "reconnect_peak_per_s",
    "messages_sent",
    "messages_delivered",
    "messages_missed",
    "history_lost",
}


def test_json_report_of_a_chat_kill() -> None:
    report = run(
        "--workload",
        "chat",
        "--mode",
        "stateless",
        "--users",
        "12",
        "--rate",
        "20",
        "--seconds",
        "6",
        "--at",
        "3:kill:worker-1",
        "--json",
    )
    assert set(report) >= CHAT_KEYS
    assert report["orphans_after"] == 0
    [kill] = report["kills"]
    assert kill["connections_held"] > 0
    assert report["connections_dropped"] == kill["connections_held"]
    assert report["reconnects"] == kill["connections_held"]  # every user came back
    assert report["reconnect_p95_ms"] >= report["reconnect_p50_ms"] > 0
    assert report["reconnect_all_back_ms"] > 0 and report["reconnect_peak_per_s"] > 0
    assert report["messages_sent"] > 0 and report["messages_delivered"] > 0
    assert report["messages_missed"] == 0 and report["history_lost"] == 0  # stateless


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rooms", "3"], "rooms is a chat setting"),
        (["--no-jitter"], "jitter is a chat setting"),
        (["--at", "1:set:jitter=off"], "jitter is a chat setting"),
        (["--workload", "chat", "--handoff"], "handoff is a shop setting"),
        (["--workload", "chat", "--at", "1:set:session-ttl=5"], "session_ttl is a shop"),
        (["--workload", "chat", "--rooms", "11"], "rooms must be"),
    ],
)
def test_settings_of_the_other_workload_are_a_clear_command_error(
    args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("runscenario", "--workers", "2", "--seconds", "2", *args, stdout=io.StringIO())


def test_readable_summary_without_json() -> None:
    out = io.StringIO()
    call_command(
        "runscenario", "--workers", "1", "--users", "2", "--seconds", "1", "--no-sticky", stdout=out
    )
    text = out.getvalue()
    assert "stateful lab: 1 workers, 2 users" in text
    assert "sticky off" in text and "orphans after     0" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kill", "worker-1"], "worker-N@SECONDS"),
        (["--kill", "worker-3@1"], "worker-1 to worker-2"),
        (["--kill", "worker-1@5"], "before the end"),
        (["--seconds", "0"], "--seconds"),
        (["--workers", "9"], "workers must be"),
        (["--rate", "0"], "rate must be"),
    ],
)
def test_bad_arguments_are_a_clear_command_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("runscenario", "--workers", "2", "--seconds", "2", *args, stdout=io.StringIO())


def _workers(command: psutil.Process) -> list[int]:
    return [c.pid for c in command.children() if "playground.worker" in c.cmdline()]


def test_ctrl_c_closes_the_lab_and_prints_no_traceback(redis_url: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "REDIS_URL": redis_url}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runscenario", "--workers", "2", "--seconds", "60"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A terminal's Ctrl-C, even when the test run itself ignores SIGINT (CI, background).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        command = psutil.Process(process.pid)
        deadline = time.monotonic() + 30
        while len(workers := _workers(command)) < 2:
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert "Interrupted: the lab was closed" in err
    assert "Traceback" not in err
    assert find_orphans(workers) == []
