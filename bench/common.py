"""What every benchmark shares: servers started and always stopped, percentiles, tables.

Benchmarks print figures and never assert on timings. Every process started here runs on
loopback, dies with this process (PR_SET_PDEATHSIG) and is stopped, with its children, in
a `finally` even when the benchmark fails half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from config import embedded_redis
from config.lifeline import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "config.settings.test"  # DEBUG off, real Redis: as close to production as runs here
T = TypeVar("T")
START_TIMEOUT = 30.0  # a cold daphne on a busy 2-core machine takes a few seconds


class Skip(Exception):
    """The benchmark cannot run here (a part or a tool is missing). The text says why."""


# -- results ------------------------------------------------------------------------------


@dataclass
class Target:
    """One goal from the issues and what this run measured against it."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: nothing to compare (no samples)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "n/a"}[self.met]


@dataclass
class Report:
    name: str
    title: str
    text: list[str] = field(default_factory=list)  # what was printed: tables and notes
    targets: list[Target] = field(default_factory=list)
    skipped: str | None = None
    # Targets that are not figures but promises (the hostile run): one not met fails the run.
    required: bool = False

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.text.append(line)

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 1
    ) -> None:
        for line in table(headers, rows, digits).splitlines():
            self.say(line)


def run_async(coro: Coroutine[Any, Any, T], limit: float) -> T:
    """asyncio.run with a time limit: on expiry the coroutine is cancelled, so its
    `finally` blocks close what it started, and TimeoutError is raised."""

    async def bounded() -> T:
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                return await coro
        except TimeoutError:
            if scope.expired():
                raise TimeoutError(f"gave up after {limit:g}s") from None
            raise  # a timeout of the benchmark's own, with its own message

    return asyncio.run(bounded())


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the value a real request had); nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 1) -> str:
    """A plain-text table: text left-aligned, numbers right-aligned."""
    cells = [[fmt(c, digits) for c in row] for row in rows]

    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    # A column of numbers (blanks and "-" allowed among them) is right-aligned.
    numeric = [
        any(number(row[i]) for row in rows)
        and all(number(row[i]) or row[i] in ("", "-") for row in rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}, Python {sys.version.split()[0]}"


def cpu_seconds(processes: Sequence[Any]) -> float:
    """CPU seconds (user + system) of these psutil processes; one that has exited counts as
    nothing."""
    import psutil

    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


# -- checks for missing parts --------------------------------------------------------------


def require_import(module: str, why: str) -> Any:
    """Import a module of the project or skip: "skipped: <why> (<module>: <error>)"."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{why} ({module}: {exc})") from None


# -- processes -------------------------------------------------------------------------------


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None, timeout: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{_name(process)} exited with {process.returncode} at start{_tail(log)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:g}s{_tail(log)}")


def _name(process: subprocess.Popen[bytes]) -> str:
    args = process.args if isinstance(process.args, list) else [str(process.args)]
    return " ".join(str(a) for a in args[1:4])


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return ("; its log ends with:\n    " + "\n    ".join(text)) if text else ""


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, SIGKILL after `timeout`; then SIGKILL whatever of its descendants is left
    (lab workers run in their own sessions, so they are not in its process group)."""
    import psutil

    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=3)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=3)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack(contextlib.ExitStack):
    """Everything a benchmark starts; leaving the `with` stops it all, newest first."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.tmp = Path(self.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))

    def redis(self) -> embedded_redis.EmbeddedRedis:
        server = embedded_redis.start()
        self.callback(server.stop)
        return server

    def spawn(
        self, args: list[str], *, env: dict[str, str], log_name: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{log_name}.log"
        handle: IO[bytes] = self.enter_context(open(log, "wb"))  # noqa: SIM115
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # safe: no threads here
        )
        self.callback(stop_process, process)
        return process, log

    def site_env(self, redis_url: str) -> dict[str, str]:
        """Environment of the site's processes: test settings (DEBUG off), this run's
        Redis, a fresh migrated SQLite database in the temp dir."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{self.tmp / 'db.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "LOG_LEVEL": "WARNING",
        }
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()[-10:]
            raise RuntimeError("manage.py migrate failed:\n    " + "\n    ".join(err))
        return env

    def daphne(self, env: dict[str, str], app: str, name: str) -> Server:
        port = embedded_redis.free_port()
        process, log = self.spawn(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
            env=env,
            log_name=f"daphne-{name}",
        )
        wait_for_port(port, process, START_TIMEOUT, log)
        return Server(process, port, log)

    def labhost(
        self, env: dict[str, str], redis_url: str, max_labs: int = 50, name: str = ""
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """`manage.py runlabs`, returned once its heartbeat is in Redis (it serves)."""
        import redis

        protocol = require_import("playground.labprotocol", "the lab host is missing")
        if not (ROOT / "playground/management/commands/runlabs.py").exists():
            raise Skip("the lab host command `manage.py runlabs` does not exist yet")
        process, log = self.spawn(
            [sys.executable, "manage.py", "runlabs", "--name", name or protocol.HOST_CHANNEL]
            + ["--max-labs", str(max_labs)],
            env=env,
            log_name=name or "runlabs",
        )
        key = protocol.heartbeat_key(name or protocol.HOST_CHANNEL)
        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not client.exists(key):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"manage.py runlabs exited with {process.returncode}{_tail(log)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the lab host sent no heartbeat{_tail(log)}")
                time.sleep(0.1)
        finally:
            client.close()
        return process, log


# -- a tiny HTTP client (urllib, cookies kept) ------------------------------------------------


@dataclass
class Response:
    status: int
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class Browser:
    """urllib with a cookie jar: enough to be a learner with a session."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path: str, data: dict[str, str] | None = None) -> Response:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        try:
            with self.opener.open(req, timeout=15) as resp:
                return Response(resp.status, resp.url, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.url or path, dict(exc.headers), exc.read())

    def lab_start(self, **fields: str) -> str:
        """Start a lab through the playground's form, as a learner does; return its id."""
        return self.lab_submit(self.lab_form(), **fields)

    def lab_form(self) -> str:
        """Open the start form (GET /playground/); its CSRF token."""
        start = self.request("/playground/")
        token = csrf_token(start.text) if start.status == 200 else None
        if token is None:
            raise Skip(f"no lab start form at /playground/ (GET answered {start.status})")
        return token

    def lab_submit(self, token: str, **fields: str) -> str:
        """Press `Start lab` on an open form (the POST, and its redirect); the lab's id."""
        started = self.request("/playground/labs/", {"csrfmiddlewaretoken": token, **fields})
        match = LAB_PATH.search(started.url)
        if started.status != 200 or match is None:
            raise Skip(
                f"starting a lab did not lead to its page (POST /playground/labs/ "
                f"ended at {started.url} with {started.status})"
            )
        return match.group(1)

    def cookies(self) -> dict[str, str]:
        return {c.name: c.value or "" for c in self.jar}

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies().items())


LAB_PATH = re.compile(r"/playground/labs/([a-z0-9]+)/$")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"')


def csrf_token(html: str) -> str | None:
    match = CSRF_INPUT.search(html)
    return match.group(1) if match else None


def which(tool: str) -> str | None:
    return shutil.which(tool)
