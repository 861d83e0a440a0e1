"""Worker processes: spawn them, signal them, reap them, restart them; never leak one.

Each worker is `python -m playground.worker` in its own process group (so a signal
reaches everything it might start), killed by the kernel if its spawner dies
(PR_SET_PDEATHSIG) and watching its parent pid itself as a second guard.
No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabError

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 10.0  # a cold start on a busy 2-core machine can take seconds
CLOSE_GRACE = 0.5
BACKOFF_FIRST = 0.1  # like systemd's RestartSec with RestartSteps: 100 ms, doubling
CRASH_LIMIT = 3  # like StartLimitBurst=3 ...
CRASH_WINDOW = 10.0  # ... within StartLimitIntervalSec=10

# -S: no site-packages; the worker uses the standard library only and starts faster (a chat
# worker appends wsproto's directories itself: PLAYGROUND_WORKER_LIBS).
INTERPRETER = (sys.executable, "-S", "-m", "playground.worker")
POOL_REFILL_AFTER = 0.5  # seconds after a claim before the pool starts replacements
POOL_RETRY_FIRST = 1.0  # a warm worker that would not start: the pool tries again after this,
POOL_RETRY_MAX = 60.0  # doubling up to this; labs meanwhile spawn cold

# Every worker pid spawned by this Python process, for orphan checks in tests.
_spawned: set[int] = set()


def spawned_pids() -> set[int]:
    return set(_spawned)


def find_orphans(pids: Iterable[int]) -> list[int]:
    """Pids of these processes, or of members of their process groups, still running.

    Zombies do not count: they are dead, only waiting for whoever adopted them to reap.
    """
    import psutil  # the lab host needs it only for this check

    wanted = set(pids)
    alive: set[int] = set()
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.pid in wanted or os.getpgid(proc.pid) in wanted:
                alive.add(proc.pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return sorted(alive)


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Workers start hundreds of times: let them cache their bytecode (about 5 ms of
    # every start), but outside the source tree, which PYTHONDONTWRITEBYTECODE protects.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(
        tempfile.gettempdir(), f"playground-worker-pycache-{os.getuid()}"
    )
    env["PLAYGROUND_WORKER_LIBS"] = os.pathsep.join(worker_libraries())
    return env


def worker_libraries() -> list[str]:
    """Where the chat worker's one library (wsproto, and h11 under it) is installed:
    workers run with -S (no site-packages), so a chat worker adds these to its path
    itself (playground.worker.life.chat_libraries). Found without importing them."""
    found: list[str] = []
    for name in ("wsproto", "h11"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            directory = str(Path(spec.origin).parent.parent)
            if directory not in found:
                found.append(directory)
    return found


@dataclass
class WorkerSpec:
    """How every worker of a lab is started."""

    mode: str
    redis_url: str | None = None
    prefix: str = "lab:default:"
    work_ms: float = 0.0
    concurrency: int = 1
    version: int = 1
    handoff: bool = False  # stateful workers hand their sessions to the store on a stop
    workload: str = "shop"  # chat: WebSocket rooms (playground.worker.chat)

    def command(self, name: str) -> list[str]:
        return [*INTERPRETER, *self.arguments(name)]

    def arguments(self, name: str) -> list[str]:
        """The worker's flags: what a cold spawn gets on its command line and a warm one
        (WorkerPool) on stdin, so both run the lab's settings."""
        args = [
            "--name",
            name,
            "--mode",
            self.mode,
            "--port",
            "0",
            "--parent-pid",
            str(os.getpid()),
            "--prefix",
            self.prefix,
            "--work-ms",
            str(self.work_ms),
            "--concurrency",
            str(self.concurrency),
            "--version",
            str(self.version),
        ]
        if self.redis_url:
            args += ["--redis-url", self.redis_url]
        if self.handoff:
            args.append("--handoff")
        if self.workload != "shop":
            args += ["--workload", self.workload]
        return args


@dataclass(eq=False)
class WorkerProcess:
    """One named worker slot; its OS process changes on every (re)start."""

    name: str
    process: asyncio.subprocess.Process | None = None
    pid: int | None = None
    port: int | None = None
    state: str = "new"  # new, starting, running, paused, draining, exited
    expected_exit: str | None = None  # why we ended it; None means it crashed
    returncode: int | None = None
    crashes: int = 0
    crash_times: deque[float] = field(default_factory=lambda: deque(maxlen=CRASH_LIMIT))
    crash_loop: bool = False
    spawn_ms: float | None = None
    warm: bool = False  # its current process came from the WorkerPool
    version: int = 0  # the release its current process runs
    spawn_history: list[float] = field(default_factory=list)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    restart_task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy_with: str = ""
    removed: bool = False

    @property
    def alive(self) -> bool:
        """Spawned and not yet reaped (a paused or dying process is alive)."""
        return self.process is not None and self.process.returncode is None

    def signal(self, signum: int) -> None:
        """Signal the whole process group, only while we have not reaped its leader
        (after that the number could belong to someone else)."""
        if self.alive and self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class WorkerPool:
    """Warm workers, like a serverless platform's provisioned concurrency: processes that
    have started Python and imported the worker, then wait, idle, until a lab starts and
    claims them. A claimed one gets the very flags a cold spawn would have on its command
    line (WorkerSpec.arguments), so every lab's settings hold; it is the lab's from then on,
    as if the lab had spawned it. The pool refills in the background, one process at a time.

    A lab host keeps one (`manage.py runlabs --warm-workers`); a Lab without one spawns
    cold. Only a lab's start uses it: restarts, added workers and deploys spawn cold, so
    what the lab shows of a process's start stays true. Its processes die with the host
    (the lifeline, and the end of their stdin) and are SIGKILLed by close().
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._ready: deque[asyncio.subprocess.Process] = deque()
        self._wanted = asyncio.Event()
        self._filler: asyncio.Task[None] | None = None
        self._env = _worker_env()

    async def __aenter__(self) -> WorkerPool:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._filler is None and self.size > 0:
            self._filler = asyncio.create_task(self._fill_loop())

    def pids(self) -> list[int]:
        """The warm processes waiting now."""
        return [process.pid for process in self._ready if process.returncode is None]

    def claim(self) -> asyncio.subprocess.Process | None:
        """A waiting warm worker (its stdout has said WAITING), or None when there is none."""
        self._wanted.set()
        while self._ready:
            process = self._ready.popleft()
            if process.returncode is None:
                return process
        return None

    async def _fill_loop(self) -> None:
        delay = POOL_RETRY_FIRST
        while True:
            self._ready = deque(p for p in self._ready if p.returncode is None)
            if len(self._ready) >= self.size:
                self._wanted.clear()
                await self._wanted.wait()
                # The start that claimed them first: a replacement's interpreter start
                # (60-150 ms of CPU) would compete with it, and with its page, on 2 cores.
                await asyncio.sleep(POOL_REFILL_AFTER)
                continue
            try:
                self._ready.append(await self._spawn())
                delay = POOL_RETRY_FIRST
            except LabError:  # e.g. out of memory: labs spawn cold meanwhile
                await asyncio.sleep(delay)
                delay = min(delay * 2, POOL_RETRY_MAX)

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            process = await asyncio.create_subprocess_exec(
                *INTERPRETER,
                "--pooled",
                "--parent-pid",
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=ROOT,
                env=self._env,
                start_new_session=True,  # as a cold spawn (see Supervisor._spawn)
            )
        except OSError as exc:
            raise LabError(f"a warm worker could not be spawned: {exc}") from exc
        _spawned.add(process.pid)
        try:
            assert process.stdout is not None
            async with asyncio.timeout(READY_TIMEOUT):
                line = await process.stdout.readline()
            if line != b"WAITING\n":
                raise LabError(f"a warm worker did not start: {describe_exit(process.returncode)}")
        except BaseException:
            _kill_group(process)
            with contextlib.suppress(BaseException):
                await asyncio.shield(process.wait())
            raise
        return process

    async def close(self) -> None:
        """Stop refilling and SIGKILL every waiting process; returns once they are reaped."""
        self.size = 0
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
        waiting, self._ready = list(self._ready), deque()
        for process in waiting:
            _kill_group(process)
        await asyncio.gather(*(process.wait() for process in waiting))


def _starting(worker: WorkerProcess, version: int) -> None:
    worker.state = "starting"
    worker.expected_exit = None
    worker.port = None
    worker.stderr_tail.clear()
    worker.version = version


def _kill_group(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


class Supervisor:
    """Starts and ends the lab's worker processes, and restarts crashed ones if asked.

    emit(kind, text) reports events; on_ready(worker) is called when a process accepts
    connections; on_exit(worker) when one has been reaped.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        emit: Callable[[str, str], object],
        on_ready: Callable[[WorkerProcess], None],
        on_exit: Callable[[WorkerProcess], None],
        auto_restart: bool = False,
        pool: WorkerPool | None = None,
    ) -> None:
        self.spec = spec
        self.pool = pool
        self.emit = emit
        self.on_ready = on_ready
        self.on_exit = on_exit
        self.auto_restart = auto_restart
        self.workers: dict[str, WorkerProcess] = {}
        self.all_pids: list[int] = []
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawning = 0
        self._no_spawns = asyncio.Event()
        self._no_spawns.set()
        self._env = _worker_env()

    # -- bookkeeping --

    def add(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(name)
        self.workers[name] = worker
        return worker

    def forget(self, worker: WorkerProcess) -> None:
        worker.removed = True
        self._cancel_restart(worker)
        self.workers.pop(worker.name, None)

    def live_pids(self) -> list[int]:
        return [w.pid for w in self.workers.values() if w.alive and w.pid is not None]

    def _task(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- start --

    async def spawn(self, worker: WorkerProcess, *, warm: bool = False) -> None:
        """Start the worker's process and return once it accepts connections; `warm`: from
        the pool if it has one waiting (a lab's start), else spawned.

        Raises LabError (after killing what it started) if it does not come up.
        """
        if self.closing:
            raise LabError("The lab is closing.")
        if worker.alive:
            raise LabError(f"{worker.name} is already running.")
        # close() waits for spawns under way: a process forked while it runs is not leaked.
        self._spawning += 1
        self._no_spawns.clear()
        try:
            await self._spawn(worker, warm)
        finally:
            self._spawning -= 1
            if not self._spawning:
                self._no_spawns.set()

    async def _spawn(self, worker: WorkerProcess, warm: bool) -> None:
        _starting(worker, self.spec.version)
        process = self._claim(worker) if warm and self.pool is not None else None
        if process is not None:
            try:
                await self._until_ready(worker, process, time.perf_counter(), warm=True)
                return
            except LabError:
                if self.closing:
                    raise
                # It died while it waited (killed, out of memory): this worker spawns.
                _starting(worker, self.spec.version)
        started = time.perf_counter()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.spec.command(worker.name),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=ROOT,
                env=self._env,
                # Its own process group: killpg reaches all of it. No preexec_fn: the worker
                # sets its own PR_SET_PDEATHSIG, so this spawn is a vfork, not a full fork
                # that would stall the lab host's event loop (and other labs' health checks).
                start_new_session=True,
            )
        except OSError as exc:
            worker.state = "exited"
            raise LabError(f"{worker.name} could not be spawned: {exc}") from exc
        _spawned.add(process.pid)
        await self._until_ready(worker, process, started, warm=False)

    def _claim(self, worker: WorkerProcess) -> asyncio.subprocess.Process | None:
        """A warm process from the pool, handed this worker's flags; None if none waits."""
        assert self.pool is not None
        process = self.pool.claim()
        if process is None:
            return None
        assert process.stdin is not None
        flags = json.dumps(self.spec.arguments(worker.name)).encode()
        process.stdin.write(flags + b"\n")
        process.stdin.close()  # one that died meanwhile fails its READY line instead
        return process

    async def _until_ready(
        self,
        worker: WorkerProcess,
        process: asyncio.subprocess.Process,
        started: float,
        *,
        warm: bool,
    ) -> None:
        """Make `process` the worker's and wait for its READY line; on failure kill it and
        raise LabError."""
        worker.warm = warm
        self.all_pids.append(process.pid)
        worker.process, worker.pid, worker.returncode = process, process.pid, None
        stderr_reader = self._task(self._read_stderr(worker, process))
        self._task(self._watch(worker, process))
        try:
            if self.closing:
                raise LabError("The lab is closing.")
            assert process.stdout is not None
            async with asyncio.timeout(READY_TIMEOUT):
                line = await process.stdout.readline()
            if not line.startswith(b"READY "):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await asyncio.shield(stderr_reader)
                detail = " / ".join(worker.stderr_tail) or describe_exit(process.returncode)
                raise LabError(f"{worker.name} failed to start: {detail}")
            port = int(line.split()[1])
        except BaseException as exc:
            worker.expected_exit = "start_failed"
            worker.signal(signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.shield(process.wait())
            worker.state = "exited"
            if isinstance(exc, TimeoutError):
                raise LabError(
                    f"{worker.name} did not accept connections within {READY_TIMEOUT:g} s."
                ) from exc
            raise
        worker.spawn_ms = round((time.perf_counter() - started) * 1000, 1)
        worker.spawn_history.append(worker.spawn_ms)
        worker.port = port
        worker.state = "running"
        self.on_ready(worker)
        since = "it was handed its settings (a warm process)" if warm else "spawn"
        self.emit(
            "worker.started",
            f"{worker.name} started (pid {worker.pid}, port {port}): accepting connections "
            f"{worker.spawn_ms:.0f} ms after {since}.",
        )

    async def _read_stderr(
        self, worker: WorkerProcess, process: asyncio.subprocess.Process
    ) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            worker.stderr_tail.append(line.decode(errors="replace").rstrip())

    async def _watch(self, worker: WorkerProcess, process: asyncio.subprocess.Process) -> None:
        returncode = await process.wait()
        if worker.process is not process:
            return
        worker.returncode = returncode
        worker.state = "exited"
        if worker.expected_exit == "start_failed":
            return
        self.on_exit(worker)
        if worker.expected_exit not in (None, "killed"):
            return  # stopped, removed, restarted or closed on purpose
        worker.crashes += 1
        worker.crash_times.append(time.monotonic())
        if worker.expected_exit is None:
            self.emit(
                "worker.crashed",
                f"{worker.name} (pid {worker.pid}) died unexpectedly: {describe_exit(returncode)}.",
            )
        if self.auto_restart and not self.closing and not worker.removed:
            self._schedule_restart(worker)

    # -- auto-restart with backoff --

    def _recent_crashes(self, worker: WorkerProcess) -> int:
        now = time.monotonic()
        return sum(1 for t in worker.crash_times if now - t <= CRASH_WINDOW)

    def _schedule_restart(self, worker: WorkerProcess) -> None:
        recent = self._recent_crashes(worker)
        if recent >= CRASH_LIMIT:
            worker.crash_loop = True
            self.emit(
                "worker.crash_loop",
                f"{worker.name} crashed {recent} times in {CRASH_WINDOW:g} s: crash loop, "
                f"auto-restart gives up on it (restart it by hand).",
            )
            return
        delay = BACKOFF_FIRST * 2 ** (recent - 1)
        self.emit(
            "worker.restarting",
            f"auto-restart: {worker.name} starts again in {delay * 1000:.0f} ms "
            f"(crash {recent} of {CRASH_LIMIT} allowed in {CRASH_WINDOW:g} s).",
        )
        self._cancel_restart(worker)
        worker.restart_task = self._task(self._restart_later(worker, delay))

    async def _restart_later(self, worker: WorkerProcess, delay: float) -> None:
        await asyncio.sleep(delay)
        if worker.lock.locked() or worker.alive or worker.removed or self.closing:
            return
        async with worker.lock:
            worker.busy_with = "restarting"
            try:
                await self.spawn(worker)
            except LabError as exc:
                self.emit("worker.start_failed", str(exc))
                worker.crashes += 1
                worker.crash_times.append(time.monotonic())
                if self.auto_restart and not self.closing:
                    self._schedule_restart(worker)
            finally:
                worker.busy_with = ""
                if worker.restart_task is asyncio.current_task():
                    worker.restart_task = None

    def _cancel_restart(self, worker: WorkerProcess) -> None:
        task = worker.restart_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        worker.restart_task = None

    def clear_crashes(self, worker: WorkerProcess) -> None:
        """A manual restart forgives past crashes, like `systemctl reset-failed`."""
        self._cancel_restart(worker)
        worker.crash_loop = False
        worker.crash_times.clear()

    # -- signals --

    async def kill(self, worker: WorkerProcess, why: str = "killed") -> None:
        """SIGKILL the process group and wait until the process is reaped."""
        process = worker.process
        if process is None or not worker.alive:
            return
        worker.expected_exit = why
        worker.signal(signal.SIGKILL)
        await asyncio.shield(process.wait())

    async def stop(self, worker: WorkerProcess, grace: float, why: str = "stopped") -> bool:
        """SIGTERM (then SIGCONT, in case it is paused, as systemd does); SIGKILL after
        `grace` seconds. Returns True if it exited by itself."""
        process = worker.process
        if process is None or not worker.alive:
            return True
        worker.expected_exit = why
        worker.state = "draining"
        worker.signal(signal.SIGTERM)
        worker.signal(signal.SIGCONT)
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(process.wait())
            return True
        except TimeoutError:
            worker.signal(signal.SIGKILL)
            await asyncio.shield(process.wait())
            return False

    def pause(self, worker: WorkerProcess) -> None:
        worker.signal(signal.SIGSTOP)
        worker.state = "paused"

    def resume(self, worker: WorkerProcess) -> None:
        worker.signal(signal.SIGCONT)
        worker.state = "running"

    # -- the end --

    async def _end_all(self, grace: float) -> None:
        alive = [w for w in self.workers.values() if w.alive and w.process is not None]
        for worker in alive:
            worker.expected_exit = worker.expected_exit or "close"
            worker.signal(signal.SIGTERM if grace else signal.SIGKILL)
            worker.signal(signal.SIGCONT)
        waits = [asyncio.shield(w.process.wait()) for w in alive if w.process is not None]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=grace or None)
        if pending:
            for worker in alive:
                worker.signal(signal.SIGKILL)
            await asyncio.wait(pending)

    async def close(self) -> None:
        """End every worker: SIGTERM, SIGKILL after a short grace, reap them all."""
        self.closing = True
        for worker in self.workers.values():
            self._cancel_restart(worker)
        await self._end_all(grace=CLOSE_GRACE)
        # A spawn that was under way sees `closing` and kills its own process; wait for it.
        await self._no_spawns.wait()
        await self._end_all(grace=0.0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
