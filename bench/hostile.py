"""The hostile run of issue 13, repeatable: the site started as `make run` starts it
(`python -m config.serve`, embedded Redis, DEBUG off), attacked as an attacker and a careless
operator would, then checked for damage.

Every probe prints one row: what was tried, what the site did, and whether that is what it
should do. After the probes the site is stopped as Ctrl-C stops it, and the run checks that
nothing broke: no traceback (or unretrieved task exception, or send on a closed protocol) in
the launcher's log, no process of the site or of its labs left running, and that the site
served to the end. Any row that is not "held" fails the run (`python -m bench hostile` exits
1). Bounded: about a minute, at most RUN_SECONDS. Real processes, loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from config.embedded_redis import free_port

from .common import Browser, Report, Stack, Target, csrf_token, run_async
from .ws import WebSocket, WebSocketClosed

RUN_SECONDS = 110.0
# What the launcher's log must never show (docs/architecture.md: one line per fault, no
# traceback).
BAD_LOG_LINES = {
    "Traceback": "tracebacks",
    "Task exception was never retrieved": "unretrieved task exceptions",
    "send on a closed protocol": "sends on a closed protocol",
}
LAB_FORM = {"mode": "stateful", "workers": "1", "users": "1", "rate": "2", "sticky": "on"}
PAGES = ["/", "/lessons/the-tradeoff/", "/playground/", "/decide/", "/search/?q=state"]
# Other clients on loopback (Linux routes all of 127/8): after the flood, the flooding
# address (127.0.0.1) may start no more labs, and each newcomer takes one reserved place.
OTHER_ADDRESS = "127.0.0.2"
THIRD_ADDRESS = "127.0.0.3"
SESSION_SOCKETS = 8  # playground.consumers.SOCKETS_PER_SESSION
FLOOD_ATTEMPTS = 60  # more than a host holds (50): the flood must be stopped before

# Frames that once crashed the lab socket (1011) and more of their kind: each must be
# answered with an `error` on a socket that stays open.
HOSTILE_FRAMES = [
    "[" * 2000 + "]" * 2000,
    '{"action": "set", "users": 99999999999999999999999999}',
    '{"action": "set", "users": -99999999999999999999999999}',
    '{"action": "set", "users": ' + "9" * 4000 + "}",
    '{"action": "set", "rate": 1e309}',
    '{"action": "set", "rate": NaN}',
    '{"action": "set", "rate": Infinity}',
    '{"action": "set", "sticky": {"a": {"b": {"c": 1}}}}',
    '{"action": "set", "balancing": "\\ud800"}',
    '{"action": "kill", "worker": "worker-99999999999"}',
    '{"action": "kill", "worker": "worker-\\u0661"}',
    '{"action": "k\\u0000ill"}',
    '{"action": ["kill"]}',
    '{"action": "kill", "worker": "worker-1", "extra": 1}',
    '{"action": "add_worker", "pad": "' + "é" * 2100 + '"}',
    "\ufeff{}",
    "null",
    "",
]
# Origins of another port, scheme or host than the site's: a page there must not drive a
# learner's lab with their cookie.
FOREIGN_ORIGINS = [
    "http://127.0.0.1:1",
    "https://127.0.0.1:{port}",
    "http://localhost:{port}",
    "http://evil.example",
    "null",
]


class Broken(Exception):
    """A probe found the site doing what it must not: the row says what."""


@dataclass
class Probe:
    name: str
    outcome: str
    held: bool


@dataclass
class Site:
    """The launcher and what the run saw of it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    seen: dict[int, str] = field(default_factory=dict)  # every pid below it, ever

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def children(self) -> dict[int, str]:
        """Its processes now (all remembered in `seen`)."""
        found: dict[int, str] = {}
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                try:
                    found[child.pid] = " ".join(child.cmdline())
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        self.seen.update(found)
        return found

    def child(self, command: str) -> int | None:
        pids = [pid for pid, cmd in self.children().items() if command in cmd]
        return pids[0] if len(pids) == 1 else None


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request, no cookies: status (0 when no answer), headers, body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    except OSError:
        return 0, {}, b""
    finally:
        connection.close()


def raw_answer(port: int, request: bytes) -> bytes:
    """The first bytes the server answers to a raw request; b"" when it drops it."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(request)
            return sock.recv(64)
        except (ConnectionResetError, BrokenPipeError):
            return b""


class FromAddress(urllib.request.HTTPHandler):
    """urllib's HTTP handler, connecting from a given local address."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(http.client.HTTPConnection, req, source_address=(self.source, 0))


class Learner(Browser):
    """A browser with cookies, from a given loopback address; `lab_id` of its last lab."""

    def __init__(self, base: str, source: str | None = None) -> None:
        super().__init__(base)
        self.lab_id = ""
        if source is not None:
            self.opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(self.jar), FromAddress(source)
            )

    def start_lab(self) -> tuple[int, str]:
        """Start a lab through the form: the status and, when it started, the lab's id."""
        page = self.request("/playground/")
        token = csrf_token(page.text)
        if page.status != 200 or token is None:
            return page.status, ""
        started = self.request("/playground/labs/", {"csrfmiddlewaretoken": token, **LAB_FORM})
        lab = re.search(r"/playground/labs/([a-z0-9]+)/$", started.url)
        self.lab_id = lab[1] if started.status == 200 and lab else ""
        return started.status, self.lab_id


async def lab_socket(site: Site, learner: Learner, lab_id: str, origin: str = "") -> WebSocket:
    return await WebSocket.connect(
        f"ws://127.0.0.1:{site.port}/ws/labs/{lab_id}/",
        origin=origin or site.url,
        cookie=learner.cookie_header(),
    )


async def next_message(ws: WebSocket, within: float, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The next message of one of `kinds` (others skipped); TimeoutError or WebSocketClosed."""
    deadline = time.monotonic() + within
    while True:
        _, text = await ws.recv(max(0.0, deadline - time.monotonic()))
        message: dict[str, Any] = json.loads(text)
        if message.get("type") in kinds:
            return message


async def ending(ws: WebSocket, within: float) -> tuple[str, int | None]:
    """What ends the socket: the message (`closed`, `refused` or `error` from a Redis
    outage) and the close code."""
    said = ""
    try:
        while True:
            message = await next_message(ws, within, ("closed", "refused", "error"))
            said = f"{message['type']} {message.get('code', '')}: {message['message'][:50]}"
    except WebSocketClosed as closed:
        return said, closed.code
    except TimeoutError:
        return said, None


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


async def wait_until(what: str, check: Callable[[], bool], within: float) -> float:
    """Seconds until `check()` (run in a thread) holds; Broken after `within`."""
    started = time.monotonic()
    while not await in_thread(check):
        if time.monotonic() - started > within:
            raise Broken(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


class HostileRun:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.probes: list[Probe] = []

    def row(self, name: str, outcome: str, held: bool) -> None:
        self.probes.append(Probe(name, outcome, held))
        print(f"  {'held' if held else 'BROKE'}: {name}: {outcome}", flush=True)

    def page_status(self, path: str) -> int:
        return fetch(self.site.url + path)[0]

    async def serving(self) -> None:
        took = await wait_until(
            "the site answers", lambda: self.page_status("/lessons/the-tradeoff/") == 200, 90
        )
        await self.host_serves()
        self.row("make run starts", f"pages and the lab host answer after {took:.1f} s", True)

    async def host_serves(self) -> None:
        await wait_until(
            "the lab host serves",
            lambda: b"not running" not in fetch(self.site.url + "/playground/")[2],
            30,
        )

    async def head_on_pages(self) -> None:
        answers = [await in_thread(fetch, self.site.url + path, "HEAD") for path in PAGES]
        held = all(status == 200 and body == b"" for status, _, body in answers)
        statuses = sorted({status for status, _, _ in answers})
        self.row("HEAD on pages", f"{len(PAGES)} pages: {statuses}, no body", held)

    async def oversized(self) -> None:
        url = b"GET /" + b"a" * 65_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        header = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n"
        many = b"".join(b"X-Part-%d: " % i + b"c" * 1000 + b"\r\n" for i in range(20))
        many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n"
        shown = []
        held = True
        for what, request in [
            ("65 KB URL", url),
            ("200 KB header", header),
            ("20 KB headers", many),
        ]:
            first = await in_thread(raw_answer, self.site.port, request)
            status = first.split(b" ")[1].decode() if first.startswith(b"HTTP/") else "dropped"
            shown.append(f"{what}: {status}")
            # Documented (docs/deploy.md): dropped or refused, never a 5xx or a hang.
            held = held and (status == "dropped" or status[0] == "4")
        held = held and self.page_status("/") == 200
        self.row("oversized requests", "; ".join(shown) + "; then / 200", held)

    async def origins(self, learner: Learner, lab_id: str) -> None:
        accepted = []
        for template in FOREIGN_ORIGINS:
            origin = template.format(port=self.site.port)
            try:
                ws = await lab_socket(self.site, learner, lab_id, origin)
            except (WebSocketClosed, TimeoutError, OSError):
                continue
            accepted.append(origin)
            await ws.close()
        self.row(
            "cross-port, cross-scheme, foreign origins",
            f"{len(FOREIGN_ORIGINS) - len(accepted)} of {len(FOREIGN_ORIGINS)} refused "
            f"(accepted: {accepted or 'none'})",
            not accepted,
        )

    async def frames(self, ws: WebSocket) -> None:
        errors = 0
        for frame in HOSTILE_FRAMES:
            ws.send(frame)
            await next_message(ws, 10, ("error",))
            errors += 1
            await asyncio.sleep(0.12)  # under the 10 commands a second the session may send
        assert ws.protocol is not None
        ws.protocol.sendMessage(b"\x00\x01binary", isBinary=True)
        await next_message(ws, 10, ("error",))
        errors += 1
        ws.send(json.dumps({"action": "set", "rate": 3}))
        deadline = time.monotonic() + 10
        while True:
            _, text = await ws.recv(max(0.0, deadline - time.monotonic()))
            message = json.loads(text)
            if message["type"] == "snapshot" and message["snapshot"].get("rate") == 3:
                break
        self.row(
            "hostile frames (deep nesting, huge integers, NaN, binary, ...)",
            f"{errors} of {len(HOSTILE_FRAMES) + 1} answered with an error; the socket stayed "
            "open and obeyed the next command",
            errors == len(HOSTILE_FRAMES) + 1,
        )

    async def sockets_per_session(self, learner: Learner, lab_id: str, open_now: int) -> None:
        extra: list[WebSocket] = []
        refused: tuple[str, int | None] = ("", None)
        try:
            for _ in range(SESSION_SOCKETS + 2 - open_now):
                ws = await lab_socket(self.site, learner, lab_id)
                extra.append(ws)
                first = await next_message(ws, 10, ("snapshot", "closed", "refused"))
                if first["type"] != "snapshot":
                    refused = await ending(ws, 5)
                    refused = (f"{first['type']} {first['code']}", refused[1])
                    break
        finally:
            # Half of them end as a crashed tab or a lost network does: the TCP connection
            # dropped mid-stream, no close frame (once "send on a closed protocol" in the log).
            for number, ws in enumerate(extra):
                if number % 2 and ws.protocol is not None and ws.closed is None:
                    ws.protocol.dropConnection(abort=True)
                else:
                    await ws.close()
        opened = open_now + len(extra) - (1 if refused[1] else 0)
        self.row(
            "many sockets for one session",
            f"{opened} open, the next: {refused[0] or 'accepted'} (close {refused[1]}); half "
            "of them then dropped without a close",
            opened == SESSION_SOCKETS and refused[1] == 4429,
        )

    async def flood(self) -> None:
        """One client dropping its cookies starts labs as fast as it can; then another
        address starts one."""
        started = 0
        answer = 0
        began = time.monotonic()
        for _ in range(FLOOD_ATTEMPTS):
            answer, lab_id = await in_thread(Learner(self.site.url).start_lab)
            if not lab_id:
                break
            started += 1
        took = time.monotonic() - began
        status, newcomer_lab = await in_thread(Learner(self.site.url, OTHER_ADDRESS).start_lab)
        self.row(
            "cookie-less flood of lab starts from one address",
            f"{started} labs in {took:.1f} s, then {answer}; another address then: {status}",
            started < FLOOD_ATTEMPTS and answer in (409, 429) and bool(newcomer_lab),
        )

    async def redis_killed(self, learner: Learner, ws: WebSocket) -> None:
        serve = self.site.process.pid
        redis_pid = self.site.child("redis-server")
        if redis_pid is None:
            raise Broken("no embedded redis-server under the launcher")
        # The launcher is held still so that the outage lasts while it is looked at (its
        # restart delay is 1 s: a window, not a promise).
        os.kill(serve, signal.SIGSTOP)
        try:
            os.kill(redis_pid, signal.SIGKILL)
            await wait_until("redis-server dies", lambda: ended(redis_pid), 10)
            # The learner's pages: each needs the session, which is in Redis.
            answers = [await in_thread(learner.request, path) for path in PAGES[:3]]
            said, code = await ending(ws, 15)
        finally:
            os.kill(serve, signal.SIGCONT)
        pages_held = all(
            a.status == 503 and int(a.headers.get("Retry-After", "0")) > 0 for a in answers
        )
        took = await wait_until("pages again", lambda: learner.request("/").status == 200, 60)
        await self.host_serves()
        self.row(
            "SIGKILL of the embedded redis-server",
            f"a learner's pages {sorted({a.status for a in answers})} with Retry-After; the "
            f"lab socket: {said} (close {code}); pages 200 {took:.1f} s after the launcher "
            "went on",
            pages_held and code == 4503,
        )

    async def lab_host_killed(self) -> Learner:
        learner = Learner(self.site.url, THIRD_ADDRESS)
        status, lab_id = await in_thread(learner.start_lab)
        if not lab_id:
            raise Broken(f"after Redis came back, a new lab did not start ({status})")
        ws = await lab_socket(self.site, learner, lab_id)
        await next_message(ws, 10, ("snapshot",))
        host = self.site.child("manage.py runlabs")
        if host is None:
            raise Broken("no lab host under the launcher")
        workers = [p.pid for p in psutil.Process(host).children(recursive=True)]
        self.site.children()  # remembered: the check at the end looks for them too
        os.kill(host, signal.SIGKILL)
        said, code = await ending(ws, 15)
        await ws.close()
        left = [pid for pid in workers if not ended(pid)]
        await wait_until(
            "a new lab host", lambda: self.site.child("manage.py runlabs") not in (None, host), 30
        )
        await self.host_serves()
        newcomer = Learner(self.site.url)
        status, new_lab = await in_thread(newcomer.start_lab)
        self.row(
            "SIGKILL of the lab host",
            f"the socket: {said} (close {code}); {len(workers)} lab processes, {len(left)} "
            f"left; a new host started a new lab ({status})",
            code == 4503 and not left and bool(new_lab),
        )
        return newcomer

    async def stopped(self, learner: Learner) -> None:
        """Ctrl-C: the launcher alone gets SIGINT (its children run in their own groups)."""
        ws = await lab_socket(self.site, learner, learner.lab_id)
        await next_message(ws, 10, ("snapshot",))
        self.site.children()
        os.kill(self.site.process.pid, signal.SIGINT)
        said, code = await ending(ws, 20)
        code_exit = await in_thread(self.site.process.wait, 30)
        self.row(
            "Ctrl-C",
            f"the open socket: {said} (close {code}); the launcher exited with {code_exit}",
            code == 4404 and code_exit == 0,
        )

    def aftermath(self) -> None:
        alive = [pid for pid in self.site.seen if not ended(pid)]
        self.row(
            "no process left",
            f"{len(self.site.seen)} processes seen under the launcher, {len(alive)} left",
            not alive,
        )
        log = self.site.log.read_text(errors="replace")
        counts = {label: log.count(line) for line, label in BAD_LOG_LINES.items()}
        self.row(
            "the launcher's log",
            ", ".join(f"{label}: {n}" for label, n in counts.items()),
            not any(counts.values()),
        )


def ended(pid: int) -> bool:
    """Gone, or a zombie its (stopped) parent has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def evidence(lines: list[str]) -> list[str]:
    """What to show of the log when something broke: each bad line and what follows it
    (each line once, 200 at most), or else the log's end."""
    shown: list[str] = []
    until = 0
    for number, line in enumerate(lines):
        if number >= until and any(bad in line for bad in BAD_LOG_LINES) and len(shown) < 200:
            until = number + 30
            shown += [*lines[max(0, number - 3) : until], "    ..."]
    return shown or lines[-40:]


async def attack(run: HostileRun) -> None:
    await run.serving()
    await run.head_on_pages()
    await run.oversized()
    learner = Learner(run.site.url)
    status, lab_id = await in_thread(learner.start_lab)
    if not lab_id:
        raise Broken(f"a learner could not start a lab ({status})")
    await run.origins(learner, lab_id)
    ws = await lab_socket(run.site, learner, lab_id)  # the site's own origin: accepted
    try:
        await next_message(ws, 10, ("snapshot",))
        await run.frames(ws)
        await run.sockets_per_session(learner, lab_id, open_now=1)
        await run.flood()
        await run.redis_killed(learner, ws)
    finally:
        await ws.close()
    newcomer = await run.lab_host_killed()
    await run.stopped(newcomer)


def run(quick: bool) -> Report:
    report = Report("hostile", "A hostile run against make run's launcher", required=True)
    with Stack("bench-hostile-") as stack:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",  # what make run uses
            "DATABASE_URL": f"sqlite:///{stack.tmp / 'db.sqlite3'}",
            "PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)  # the launcher starts and supervises its own
        env.pop("DEBUG", None)
        process, log = stack.spawn(
            [sys.executable, "-m", "config.serve"], env=env, log_name="serve"
        )
        site = Site(process, int(env["PORT"]), log)
        hostile = HostileRun(site)
        began = time.monotonic()
        try:
            run_async(attack(hostile), RUN_SECONDS)
        except Exception as exc:  # a probe that could not go on: the row says where
            hostile.row("the run", f"stopped: {type(exc).__name__}: {exc}", False)
        finally:
            if process.poll() is None:
                site.children()
                process.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
            hostile.aftermath()
        took = time.monotonic() - began
        tail = evidence(log.read_text(errors="replace").splitlines())

    report.say(
        f"`python -m config.serve` on loopback, {len(hostile.probes)} probes in {took:.0f} s."
    )
    report.say()
    report.table(
        ["probe", "outcome", "verdict"],
        [[p.name, p.outcome, "held" if p.held else "BROKE"] for p in hostile.probes],
    )
    broken = [p for p in hostile.probes if not p.held]
    if broken:
        report.say()
        report.say("from the launcher's log:")
        for line in tail:
            report.say(f"    {line}")
    report.targets.append(
        Target(
            "hostile probes held",
            "all",
            f"{len(hostile.probes) - len(broken)} of {len(hostile.probes)}",
            not broken,
        )
    )
    return report
