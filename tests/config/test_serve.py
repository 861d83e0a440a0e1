"""config.serve, the README's `make run`: the whole site, children that come back after a
crash, and nothing left running after Ctrl-C. Real processes throughout."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from config import embedded_redis
from config import serve as launcher
from config.embedded_redis import free_port
from tests.websocket_client import WebSocketClient

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
DAPHNE = "-m config.webserver"


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
def start_serve(
    serve_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `python -m config.serve`; its output is piped, or written to `log` (a test that
    reads it only at the end, after much output, must not fill a pipe and stall the site)."""
    started: list[subprocess.Popen[str]] = []
    stack = contextlib.ExitStack()

    def start(log: Path | None = None) -> subprocess.Popen[str]:
        if log is None:
            output: int | IO[str] = subprocess.PIPE
        else:
            output = stack.enter_context(log.open("w"))
        process = subprocess.Popen(
            [sys.executable, "-m", "config.serve"],
            cwd=ROOT,
            env=serve_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    with stack:
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


class Browser:
    """A learner's browser without JavaScript: cookies kept, redirects followed."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.url = ""
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)

    def open(
        self, path: str, data: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """Status, headers and body; the final URL (after redirects) is kept in self.url."""
        body = None if data is None else urllib.parse.urlencode(data).encode()
        try:
            with self.opener.open(f"{self.site}{path}", data=body, timeout=10) as response:
                self.url = response.url
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()
        except OSError:
            return 0, {}, ""

    def start_lab(self) -> str:
        """Start a lab through the playground's form; the lab page's path."""
        _, _, page = self.open("/playground/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page
        form = {"csrfmiddlewaretoken": token[1], "mode": "stateful", "workers": "1"}
        form |= {"users": "2", "rate": "5", "sticky": "on"}
        status, _, page = self.open("/playground/labs/", form)
        assert status == 200, page
        lab = re.fullmatch(rf"{self.site}(/playground/labs/[a-z0-9]+/)", self.url)
        assert lab, self.url
        return lab[1]


def serving(
    start_serve: Callable[..., subprocess.Popen[str]], serve_env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[str], str]:
    """The launcher started with its output in `log`, once pages and the lab host answer."""
    site = f"http://127.0.0.1:{serve_env['PORT']}"
    serve = start_serve(log)
    wait_for("the site answers", lambda: get(f"{site}/lessons/the-tradeoff/")[0] == 200, 90)
    wait_for("the lab host serves", lambda: "not running" not in get(f"{site}/playground/")[1], 30)
    return serve, site


def test_a_killed_redis_comes_back_on_its_port_and_pages_say_503_meanwhile(
    serve_env: dict[str, str], start_serve: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    serve, site = serving(start_serve, serve_env, log)
    # DEBUG is off: the site's own 404 page, and the stylesheets served all the same.
    status, page = get(f"{site}/no-such-page/")
    assert (status, "URLconf" in page, "Page not found" in page) == (404, False, True)
    for sheet in re.findall(r'href="(/static/css/[^"]+\.css)"', get(f"{site}/")[1]):
        assert get(f"{site}{sheet}")[0] == 200, sheet
    learner = Browser(site)
    lab_page = learner.start_lab()
    assert learner.open(lab_page)[0] == 200
    lab_host = child_pid(serve.pid, LAB_HOST)
    redis_pid = child_pid(serve.pid, "redis-server")
    assert lab_host is not None and redis_pid is not None
    # redis-server shows its address in its process title: "redis-server 127.0.0.1:<port>".
    address = descendants(serve.pid)[redis_pid].split()[1]
    port = address.rsplit(":", 1)[1]

    # The launcher is held still while Redis is down, so the outage lasts as long as this
    # test needs to look at it (its own restart delay is a window, not a promise).
    os.kill(serve.pid, signal.SIGSTOP)
    try:
        os.kill(redis_pid, signal.SIGKILL)
        wait_for("redis-server dies", lambda: not alive(redis_pid), 10)
        for path in ["/", "/lessons/the-tradeoff/", "/playground/", lab_page]:
            status, headers, page = learner.open(path)
            assert status == 503, (path, status, page[:300])
            assert int(headers["Retry-After"]) > 0
            assert "cannot reach Redis" in page
    finally:
        os.kill(serve.pid, signal.SIGCONT)

    wait_for("pages again", lambda: learner.open("/lessons/the-tradeoff/")[0] == 200, 60)
    assert learner.open("/")[0] == 200
    assert learner.open("/playground/")[0] == 200
    # The lab ran on, and its registry record is back: no longer "this lab has ended" (404).
    # The learner's session was in the Redis that died (no persistence), so the lab is now
    # someone else's to this browser: 403, the honest cost of an embedded Redis.
    wait_for("the lab's record again", lambda: learner.open(lab_page)[0] == 403, 30)
    assert "another browser session" in learner.open(lab_page)[2]
    assert child_pid(serve.pid, LAB_HOST) == lab_host
    # The lab host hears the web tier again: a new learner starts a lab of their own.
    newcomer = Browser(site)
    assert newcomer.open(newcomer.start_lab())[0] == 200
    new_redis = child_pid(serve.pid, "redis-server")
    assert new_redis not in (None, redis_pid)
    assert descendants(serve.pid)[new_redis].split()[1] == address  # type: ignore[index]
    seen = descendants(serve.pid)

    os.killpg(serve.pid, signal.SIGINT)
    serve.wait(timeout=30)
    output = log.read_text()
    assert serve.returncode == 0, output
    assert f"embedded Redis exited with -9; starting it again on port {port} in 1 s" in output
    assert "re-wrote the registry records of 1 running lab(s)" in output
    assert "embedded Redis is back on port" in output
    assert "Traceback" not in output, output
    assert [pid for pid in seen if alive(pid)] == []


def test_ctrl_c_tells_every_open_lab_socket_why_with_a_close_code(
    serve_env: dict[str, str], start_serve: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    serve, site = serving(start_serve, serve_env, log)
    learner = Browser(site)
    lab_page = learner.start_lab()
    url = f"ws://127.0.0.1:{serve_env['PORT']}/ws/labs/{lab_page.split('/')[-2]}/"
    tabs = [WebSocketClient(url, origin=site, cookie=learner.cookie_header()) for _ in range(3)]
    seen = descendants(serve.pid)
    # An idle connection, as a browser keeps: it once made daphne cancel no socket at all.
    with socket.create_connection(("127.0.0.1", int(serve_env["PORT"]))):
        for tab in tabs:
            assert tab.recv() is not None  # a snapshot: attached
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        heard = []
        for tab in tabs:
            said = []
            while (text := tab.recv(timeout=20)) is not None:
                message = json.loads(text)
                if message["type"] != "snapshot":
                    said.append(f"{message['type']} {message['code']}: {message['message']}")
            assert tab.ended is not None
            heard.append((said, tab.ended.code))
            tab.close()
    serve.wait(timeout=30)

    assert heard == [(["closed 4404: The lab host stopped."], 4404)] * 3
    output = log.read_text()
    assert serve.returncode == 0, output
    assert "Traceback" not in output, output
    assert [pid for pid in seen if alive(pid)] == []


def test_host_0000_serves_students_on_the_lan_addresses_it_prints(
    serve_env: dict[str, str], start_serve: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    serve_env |= {"HOST": "0.0.0.0"}
    serve_env.pop("PLAYGROUND_PUBLIC_URL", None)
    log = tmp_path / "serve.log"
    serve, _ = serving(start_serve, serve_env, log)
    joins = re.findall(r"^Students join at (http://\S+)/$", log.read_text(), re.MULTILINE)
    if not joins:
        pytest.skip("this machine has no LAN address")  # the fixture stops the site
    lan_site = joins[0]
    assert all(re.fullmatch(rf"http://[\d.]+:{serve_env['PORT']}", url) for url in joins)
    assert "127.0.0.1" not in lan_site

    learner = Browser(lan_site)  # a student's laptop: every request to the LAN address
    lab_page = learner.start_lab()
    ws = f"ws://{lan_site.removeprefix('http://')}/ws/labs/{lab_page.split('/')[-2]}/"
    tab = WebSocketClient(ws, origin=lan_site, cookie=learner.cookie_header())
    assert tab.status == 101 and tab.recv() is not None  # the origin check let it in
    tab.close()
    another_port = lan_site.rsplit(":", 1)[0] + f":{int(serve_env['PORT']) + 1}"
    foreign = WebSocketClient(ws, origin=another_port)
    assert foreign.status == 403  # still the site's own origin only
    foreign.close()

    os.killpg(serve.pid, signal.SIGINT)
    serve.wait(timeout=30)
    assert serve.returncode == 0, log.read_text()


class FakeClock:
    """The launcher's clock, moved by the test: no waiting for a delay to pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_embedded_redis_comes_back_after_1_s_then_2_then_4_and_1_again_after_a_calm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = FakeClock()
    supervised = launcher.SupervisedRedis(embedded_redis.start(), clock)
    port = supervised.server.port
    try:
        for delay in (1, 2, 4, 1):
            if delay == 1 and clock.now > 1000:
                clock.now += launcher.WINDOW + 1  # up for longer than WINDOW: a fresh failure
            killed = supervised.server.process
            killed.kill()
            killed.wait()
            supervised.check()  # notices the death, schedules the restart
            assert f"starting it again on port {port} in {delay} s" in capsys.readouterr().out
            clock.now += delay - 0.1
            supervised.check()
            assert supervised.server.process is killed  # not yet
            clock.now += 0.1
            supervised.check()
            assert supervised.server.process is not killed
            assert supervised.server.port == port
            assert embedded_redis._pings(port)
    finally:
        supervised.stop()
