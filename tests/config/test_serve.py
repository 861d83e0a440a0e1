"""config.serve, the README's `make run`: the whole site, children that come back after a
crash, and nothing left running after Ctrl-C. Real processes throughout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> dict[int, str]:
    """Every process below pid, with its command line."""
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                found[child] = cmdline.replace(b"\0", b" ").decode(errors="replace")
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def child_pid(serve_pid: int, command: str) -> int | None:
    pids = [pid for pid, cmd in descendants(serve_pid).items() if command in cmd]
    return pids[0] if len(pids) == 1 else None


LAB_HOST = "manage.py runlabs"
DAPHNE = "-m daphne"


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)  # as on a fresh machine: serve starts its embedded Redis
    return env


@pytest.fixture
def start_serve(serve_env: dict[str, str]) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "config.serve"],
            cwd=ROOT,
            env=serve_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:  # a failed test must not leave a site running either
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_killed_children_come_back_and_ctrl_c_leaves_nothing(
    serve_env: dict[str, str], start_serve: Callable[[], subprocess.Popen[str]]
) -> None:
    site = f"http://127.0.0.1:{serve_env['PORT']}"
    serve = start_serve()
    wait_for("the site answers", lambda: get(f"{site}/lessons/the-tradeoff/")[0] == 200, 90)
    wait_for("the lab host serves", lambda: "not running" not in get(f"{site}/playground/")[1], 30)
    first = child_pid(serve.pid, LAB_HOST)
    assert first is not None
    seen = descendants(serve.pid)
    assert any("redis-server" in cmd for cmd in seen.values()), seen

    os.kill(first, signal.SIGKILL)

    wait_for("a new lab host", lambda: child_pid(serve.pid, LAB_HOST) not in (None, first), 30)
    wait_for("the new one serves", lambda: "not running" not in get(f"{site}/playground/")[1], 30)
    assert get(f"{site}/lessons/the-tradeoff/")[0] == 200  # the web tier never went away
    seen |= descendants(serve.pid)

    web = child_pid(serve.pid, DAPHNE)
    assert web is not None
    os.kill(web, signal.SIGKILL)
    wait_for("a new daphne", lambda: child_pid(serve.pid, DAPHNE) not in (None, web), 30)
    wait_for("the site again", lambda: get(f"{site}/lessons/the-tradeoff/")[0] == 200, 60)
    seen |= descendants(serve.pid)

    os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    output, _ = serve.communicate(timeout=30)

    assert serve.returncode == 0, output
    assert "lab host exited with -9; starting it again" in output
    assert "daphne exited with -9; starting it again" in output
    assert [pid for pid in seen if alive(pid)] == []


def test_a_port_in_use_stops_it_at_once_with_a_message_and_nothing_left(
    serve_env: dict[str, str], start_serve: Callable[[], subprocess.Popen[str]]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(serve_env["PORT"])))
        taken.listen()
        serve = start_serve()
        seen: dict[int, str] = {}

        def exited() -> bool:
            seen.update(descendants(serve.pid))
            return serve.poll() is not None

        wait_for("serve exits", exited, 90)
        output, _ = serve.communicate(timeout=10)

    assert serve.returncode == 1, output
    assert "daphne exited with 1 and is not started again" in output
    assert [pid for pid in seen if alive(pid)] == []
