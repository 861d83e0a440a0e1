"""A lab: worker processes behind a load balancer, driven by virtual users, measured.

The Lab ties the parts together and turns what happens into events in plain words.
No Django imports here: the web, the runscenario command and the tests all drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from .balancer import Backend, Balancer
from .chat_users import ChatCrowd
from .config import CHAT_ONLY, MAX_WORKERS, SETTABLE, SHOP_ONLY, LabConfig
from .errors import LabError
from .events import EventCallback, EventLog
from .metrics import Metrics
from .process import Supervisor, WorkerPool, WorkerProcess, WorkerSpec, describe_exit
from .store import Store
from .users import Crowd

STOP_GRACE = 3.0  # SIGKILL a worker that has not drained within this
DEPLOY_HEALTHY_WITHIN = 5.0  # a new version must pass health checks within this


@dataclass
class Disruption:
    """Something done to a worker, kept to measure how long detection took."""

    worker: str
    action: str  # killed, paused, stopped
    pid: int | None
    t: float  # lab seconds
    sessions_held: int
    sessions_source: str  # "health_before_kill" or "last_health_poll"
    inflight: int  # requests in flight to it when it happened (see worker_kill)
    connections_held: int = 0  # chat: WebSockets open on it (its /health, as sessions)
    marked_down_after_ms: float | None = None
    failed_before: int = 0  # the balancer's count of requests failed on it, before
    requests_failed: int | None = None  # ... and how many failed because of it (stops)


async def _all_or_none(starts: list[Coroutine[Any, Any, object]]) -> None:
    """Run them together; on the first failure cancel the rest (each cleans up after itself)
    and raise that failure itself, not a group of one."""
    try:
        async with asyncio.TaskGroup() as group:
            for start in starts:
                group.create_task(start)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


class Lab:
    """One running lab. Create it, `await start()`, drive it, always `await close()`.

    Times in snapshot() and events are seconds since start().
    """

    def __init__(
        self,
        config: LabConfig,
        on_event: EventCallback | None = None,
        *,
        pool: WorkerPool | None = None,
    ) -> None:
        """on_event, if given, is called (synchronously, must not block) with every event
        dict {"seq", "t", "kind", "text"} as it happens. pool: warm workers for start()
        (the lab host's); without one, start() spawns its workers."""
        config.validate()
        self.config = config
        self.origin = time.monotonic()
        self.events = EventLog(self.origin, on_event)
        self.metrics = Metrics(self.origin)
        self.disruptions: list[Disruption] = []
        self.state = "new"  # new, starting, running, closing, closed
        self.balancer = Balancer(
            balancing=config.balancing,
            sticky=config.sticky,
            interval=config.health_interval,
            timeout=0.15,
            fall=config.fall,
            rise=config.rise,
            room_affinity=config.workload == "chat" and config.mode == "stateful",
            on_health=self._on_health,
        )
        self.store: Store | None = None
        if config.has_store:
            self.store = Store(persistence=config.persistence, emit=self.events.emit)
        self.supervisor = Supervisor(
            WorkerSpec(
                mode=config.mode,
                prefix=config.prefix,
                work_ms=config.work_ms,
                concurrency=config.worker_concurrency,
                handoff=config.handoff,
                workload=config.workload,
            ),
            emit=self.events.emit,
            on_ready=self._on_ready,
            on_exit=self._on_exit,
            auto_restart=config.auto_restart,
            pool=pool,
        )
        self.crowd: Crowd | None = None  # the shop's users
        self.chat: ChatCrowd | None = None  # the chat's users
        self._ticker: asyncio.Task[None] | None = None
        self._next_number = 1
        self._close_lock = asyncio.Lock()
        self.version = 1  # the release the workers run; a deploy rolls the next one out
        self.deploying = False
        self.deploys: list[dict[str, Any]] = []
        self.store_keys: int | None = None  # the store's DBSIZE, read once a second

    # -- life --

    async def start(self) -> None:
        """Spawn the workers, wait until they accept connections, start the balancer and
        the users. On any failure everything started is cleaned up and LabError raised."""
        if self.state != "new":
            raise LabError("This lab has already been started.")
        self.state = "starting"
        self.origin = self.events.origin = self.metrics.origin = time.monotonic()
        try:
            port = await self.balancer.start()
            # The store and every worker start at once: each is mostly a process starting
            # up (an interpreter's imports), so a lab waits for the slowest, not the sum.
            if self.store is not None:
                self.supervisor.spec.redis_url = await self.store.listen()
                self.store.proxy.latency_ms = self.config.store_latency_ms
                self.store.proxy.jitter_ms = self.config.store_jitter_ms
            starts: list[Coroutine[Any, Any, object]] = [
                self._spawn_new(warm=True) for _ in range(self.config.workers)
            ]
            if self.store is not None:
                starts.append(self.store.start())
            await _all_or_none(starts)
            if self.state != "starting":
                raise LabError("The lab was closed while it started.")
            if self.config.workload == "chat":
                assert self.config.rooms is not None
                self.chat = ChatCrowd(
                    port=port,
                    users=self.config.users,
                    rate=self.config.rate,
                    rooms=self.config.rooms,
                    jitter=self.config.jitter,
                    resume=self.config.mode == "stateless",
                )
                self.chat.start()
            else:
                self.crowd = Crowd(
                    port=port,
                    metrics=self.metrics,
                    users=self.config.users,
                    rate=self.config.rate,
                    session_ttl=self.config.session_ttl,
                )
                self.crowd.start()
            self._ticker = asyncio.create_task(self._tick_loop())
        except BaseException as exc:
            await self.close()
            if isinstance(exc, LabError | asyncio.CancelledError):
                raise
            raise LabError(f"The lab could not start: {exc}") from exc
        self.state = "running"
        self.events.emit(
            "lab.started",
            f"Lab started: {self.config.workers} {self.config.mode} workers behind a "
            f"{self.config.balancing.replace('_', ' ')} balancer on port {port} "
            + self._traffic_text(),
        )

    def _traffic_text(self) -> str:
        config = self.config
        if config.workload == "shop":
            return (
                f"(sticky sessions {'on' if config.sticky else 'off'}), "
                f"{config.users} users sending {config.rate:g} requests/s."
            )
        routing = (
            "(each room on the worker a hash of its name picks)"
            if config.mode == "stateful"
            else "(any worker for any connection; rooms live in the store)"
        )
        return (
            f"{routing}, {config.users} users chatting in {config.rooms} rooms, "
            f"{config.rate:g} messages/s."
        )

    async def close(self) -> None:
        """Stop users, balancer and every worker (SIGKILL after a short grace).
        Idempotent; when it returns no process of the lab is left."""
        async with self._close_lock:
            if self.state == "closed":
                return
            self.state = "closing"
            try:
                if self._ticker is not None:
                    self._ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._ticker
                if self.crowd is not None:
                    await self.crowd.close()
                if self.chat is not None:
                    await self.chat.close()
                await self.balancer.close()
            finally:
                await self.supervisor.close()
                if self.store is not None:
                    await self.store.close()
                self.state = "closed"

    # -- workers --

    def _worker(self, name: str) -> WorkerProcess:
        worker = self.supervisor.workers.get(name) if isinstance(name, str) else None
        if worker is None:
            names = ", ".join(self.supervisor.workers) or "none"
            raise LabError(f"There is no worker named {name!r} (workers: {names}).")
        return worker

    def _require_running(self) -> None:
        if self.state != "running":
            raise LabError(f"The lab is not running (it is {self.state}).")

    @contextlib.asynccontextmanager
    async def _busy(self, worker: WorkerProcess, doing: str) -> AsyncIterator[None]:
        if worker.lock.locked():
            raise LabError(
                f"{worker.name} is busy ({worker.busy_with or 'starting'}); try again in a moment."
            )
        async with worker.lock:
            worker.busy_with = doing
            try:
                yield
            finally:
                worker.busy_with = ""

    async def _spawn_new(self, *, warm: bool = False) -> WorkerProcess:
        name = f"worker-{self._next_number}"
        self._next_number += 1
        worker = self.supervisor.add(name)
        self.balancer.add(name)
        try:
            async with self._busy(worker, "starting"):
                await self.supervisor.spawn(worker, warm=warm)
        except BaseException:
            self.supervisor.forget(worker)
            self.balancer.remove(name)
            raise
        return worker

    async def worker_kill(self, name: str) -> None:
        """SIGKILL the worker's process group: a crash, as sudden as a power cut."""
        self._require_running()
        worker = self._worker(name)
        if not worker.alive:
            raise LabError(f"{name} is not running.")
        async with self._busy(worker, "being killed"):
            backend = self.balancer.backends[name]
            held, source, connections = await self._held(worker, backend)
            # In flight "at the kill": those outstanding now, plus any the balancer sends
            # it while it dies (until its sockets are closed and we have reaped it).
            dispatched = backend.dispatched
            # Recorded before the signal: the requests the kill cuts short can get it marked
            # down (passive health check) before the kill returns, and that delay is measured.
            pid = worker.pid
            kill = Disruption(
                name,
                "killed",
                pid,
                self.now(),
                held,
                source,
                backend.inflight,
                connections_held=connections,
            )
            self.disruptions.append(kill)
            await self.supervisor.kill(worker)
            await asyncio.sleep(0.01)  # let the loop see its sockets close
            kill.inflight += backend.dispatched - dispatched
            inflight = kill.inflight
            if self.config.workload == "chat":
                memory = (
                    f"it held {connections} open connections, all dropped: their users "
                    "reconnect"
                    + (
                        ", and the history of its rooms is gone"
                        if self.config.mode == "stateful"
                        else " and resume from the store"
                    )
                )
            elif self.config.mode == "stateful":
                memory = f"it held {held} sessions in its memory, now gone"
            else:
                memory = "it held no sessions (they live in Redis)"
            self.events.emit(
                "worker.killed",
                f"{name} killed (SIGKILL, pid {pid}); {memory}; "
                f"{inflight} requests were in flight to it.",
            )

    async def _held(self, worker: WorkerProcess, backend: Backend) -> tuple[int, str, int]:
        """Sessions in its memory and WebSockets open on it right now: its /health just
        before the signal, or the last health poll when it cannot answer (paused)."""
        if worker.state == "running":
            data = await self.balancer.fetch_health(worker.name)
            if data is not None:
                return (
                    int(data.get("sessions", 0)),
                    "health_before_kill",
                    int(data.get("connections", 0)),
                )
        return backend.sessions, "last_health_poll", backend.connections

    async def worker_stop(self, name: str) -> None:
        """Graceful stop: the balancer stops sending it requests, then SIGTERM; the worker
        serves every request it holds (its queue too) and exits (SIGKILL after 3 s)."""
        self._require_running()
        worker = self._worker(name)
        if not worker.alive or worker.state not in ("running", "paused"):
            raise LabError(f"{name} is not running.")
        async with self._busy(worker, "stopping"):
            await self._stop_gracefully(worker)

    async def _stop_gracefully(self, worker: WorkerProcess, why: str = "stopped") -> None:
        name = worker.name
        backend = self.balancer.backends[name]
        held, source, connections = await self._held(worker, backend)
        pid, t = worker.pid, self.now()
        handed = ""
        if connections:
            handed = (
                f" It closes its {connections} WebSockets (1001, going away): their users "
                "reconnect to another worker."
            )
        if self.config.handoff and worker.state == "running":
            answer = await self.balancer.ask(name, "POST", "/handoff", within=2.0)
            handed = (
                f" It handed {answer.get('handed_off', 0)} sessions to the store first."
                if answer
                else " Its handoff to the store failed: its sessions will be lost."
            )
        stop = Disruption(
            name,
            "stopped",
            pid,
            t,
            held,
            source,
            0,
            connections_held=connections,
            failed_before=backend.failed,
        )
        self.disruptions.append(stop)
        await self.balancer.drain(name)
        stop.inflight = backend.inflight
        self.events.emit(
            "worker.stopping",
            f"{name} taken out of the balancer, then SIGTERM (pid {pid}): serving the "
            f"{backend.inflight} requests in flight to it before it exits.{handed}",
        )
        graceful = await self.supervisor.stop(worker, STOP_GRACE, why=why)
        took = (self.now() - t) * 1000
        await asyncio.sleep(0.01)  # let the balancer see its last answers or errors
        stop.requests_failed = backend.failed - stop.failed_before
        how = (
            f"drained and exited in {took:.0f} ms ({describe_exit(worker.returncode)})"
            if graceful
            else f"did not exit within {STOP_GRACE:g} s and was SIGKILLed"
        )
        gone = (
            f"; the {held} sessions in its memory are gone"
            if held and not self.config.handoff
            else ""
        )
        self.events.emit(
            "worker.stopped",
            f"{name} stopped: {how}; {stop.requests_failed} requests failed{gone}.",
        )

    async def worker_pause(self, name: str) -> None:
        """SIGSTOP: a hung worker. The kernel still accepts connections for it; nothing
        answers. Health checks notice."""
        self._require_running()
        worker = self._worker(name)
        if worker.state == "paused":
            raise LabError(f"{name} is already paused.")
        if not worker.alive or worker.state != "running":
            raise LabError(f"{name} is not running.")
        async with self._busy(worker, "pausing"):
            backend = self.balancer.backends[name]
            self.supervisor.pause(worker)
            self.disruptions.append(
                Disruption(
                    name,
                    "paused",
                    worker.pid,
                    self.now(),
                    backend.sessions,
                    "last_health_poll",
                    backend.inflight,
                )
            )
            self.events.emit(
                "worker.paused",
                f"{name} paused (SIGSTOP, pid {worker.pid}): alive, still holding its "
                f"sessions, but it answers nothing, like a hung process.",
            )

    async def worker_resume(self, name: str) -> None:
        """SIGCONT a paused worker; health checks bring it back into service."""
        self._require_running()
        worker = self._worker(name)
        if worker.state != "paused" or not worker.alive:
            raise LabError(f"{name} is not paused.")
        async with self._busy(worker, "resuming"):
            self.supervisor.resume(worker)
            healthy = self.balancer.backends[name].healthy
            note = (
                "it never missed enough health checks to be taken out"
                if healthy
                else f"health checks must pass {self.config.rise} times before it gets traffic"
            )
            self.events.emit(
                "worker.resumed", f"{name} resumed (SIGCONT, pid {worker.pid}); {note}."
            )

    async def worker_restart(self, name: str) -> None:
        """Stop the worker (gracefully; SIGKILL if paused) and start a new process."""
        self._require_running()
        worker = self._worker(name)
        async with self._busy(worker, "restarting"):
            self.supervisor.clear_crashes(worker)
            old = worker.pid if worker.alive else None
            if worker.alive:
                await self.balancer.drain(name)
                if worker.state == "paused":
                    await self.supervisor.kill(worker, why="restart")
                else:
                    await self.supervisor.stop(worker, STOP_GRACE, why="restart")
            await self.supervisor.spawn(worker)
            was = f" (was pid {old})" if old else ""
            fresh = " It starts with no sessions." if self.config.mode == "stateful" else ""
            self.events.emit(
                "worker.restarted",
                f"{name} restarted: pid {worker.pid}{was}, ready in {worker.spawn_ms:.0f} ms."
                f"{fresh}",
            )

    async def worker_add(self) -> str:
        """Start one more worker (the next number) and return its name."""
        self._require_running()
        if len(self.supervisor.workers) >= MAX_WORKERS:
            raise LabError(f"A lab has at most {MAX_WORKERS} workers.")
        worker = await self._spawn_new()
        self.events.emit("worker.added", f"{worker.name} added to the balancer.")
        return worker.name

    async def worker_remove(self, name: str) -> None:
        """Take the worker out of the balancer, stop it gracefully and forget it."""
        self._require_running()
        worker = self._worker(name)
        if len(self.supervisor.workers) <= 1:
            raise LabError("A lab keeps at least one worker.")
        async with self._busy(worker, "being removed"):
            await self.balancer.drain(name)
            await self.supervisor.stop(worker, STOP_GRACE, why="removed")
            self.supervisor.forget(worker)
            self.balancer.remove(name)
            self.events.emit("worker.removed", f"{name} stopped and removed from the lab.")

    # -- deploys --

    async def deploy(self) -> float:
        """Roll the next version through the workers, one at a time: graceful stop, start
        the new version, wait until it is healthy, next. A lab with one worker starts the
        new one before it stops the old. Returns how long it took (seconds)."""
        self._require_running()
        if self.deploying:
            raise LabError("A deploy is already under way; wait for it to finish.")
        busy = [w.name for w in self.supervisor.workers.values() if w.lock.locked()]
        if busy:
            raise LabError(f"{', '.join(busy)} is busy; deploy when it is done.")
        self.deploying = True
        version = self.version + 1
        t0 = self.now()
        names = list(self.supervisor.workers)
        self.events.emit(
            "deploy.started",
            f"Deploy of version {version} started: {len(names)} workers, one at a time.",
        )
        try:
            self.supervisor.spec.version = version
            if len(names) == 1:
                old = self._worker(names[0])
                new = await self._spawn_new()
                await self._until_healthy(new)
                async with self._busy(old, "deploying"):
                    await self._stop_gracefully(old, why="removed")
                    self.supervisor.forget(old)
                    self.balancer.remove(old.name)
            else:
                for name in names:
                    if self.state != "running":
                        raise LabError("The lab closed during the deploy.")
                    worker = self.supervisor.workers.get(name)
                    if worker is None:
                        continue  # removed meanwhile
                    async with self._busy(worker, "deploying"):
                        if worker.alive:
                            await self._stop_gracefully(worker, why="restart")
                        await self.supervisor.spawn(worker)
                    await self._until_healthy(worker)
            self.version = version
        except LabError as exc:
            self.events.emit("deploy.failed", f"Deploy of version {version} failed: {exc}")
            raise
        finally:
            self.deploying = False
        seconds = round(self.now() - t0, 3)
        self.deploys.append({"version": version, "at": round(t0, 3), "seconds": seconds})
        self.events.emit(
            "deploy.finished",
            f"Deploy of version {version} finished in {seconds:.1f} s: every worker runs it.",
        )
        return seconds

    async def _until_healthy(self, worker: WorkerProcess) -> None:
        deadline = time.monotonic() + DEPLOY_HEALTHY_WITHIN
        while time.monotonic() < deadline:
            backend = self.balancer.backends.get(worker.name)
            if worker.alive and backend is not None and backend.available:
                return
            await asyncio.sleep(0.05)
        raise LabError(f"{worker.name} was not healthy within {DEPLOY_HEALTHY_WITHIN:g} s.")

    # -- the store --

    def _require_store(self) -> Store:
        if self.store is None:
            raise LabError(
                "This lab has no store: its sessions live in the workers' memory "
                "(a stateless lab, or a stateful one with handoff, has one)."
            )
        return self.store

    async def store_kill(self) -> None:
        """SIGKILL the lab's store: stateless requests fail until it is restarted."""
        self._require_running()
        store = self._require_store()
        keys = self.store_keys
        pid = await store.kill()
        self.store_keys = None
        self.events.emit(
            "store.killed",
            f"Store killed (SIGKILL, pid {pid}); it held {keys if keys is not None else '?'} "
            f"keys. Requests that need it fail until it is restarted"
            + (
                " (with AOF, what it wrote in its last second may be lost)."
                if store.persistence == "aof"
                else " (no persistence: it will start empty)."
            ),
        )

    async def store_restart(self, persistence: str | None = None) -> None:
        """Start the store again (stopping it gracefully first if it runs), with the
        persistence given or the one it had."""
        self._require_running()
        store = self._require_store()
        if persistence is not None:
            self.config = self.config.replace(persistence=persistence)
        await store.restart(persistence)
        self.store_keys = await store.keys()
        self.events.emit(
            "store.restarted",
            f"Store restarted (pid {store.pid}, persistence {store.persistence}) in "
            f"{store.spawn_ms:.0f} ms; it holds {self.store_keys} keys"
            + (" read back from its append-only file." if store.persistence == "aof" else "."),
        )

    # -- knobs --

    async def set(self, **changes: Any) -> None:
        """Change any of the knobs in config.SETTABLE (validated)."""
        self._require_running()
        unknown = sorted(set(changes) - set(SETTABLE))
        if unknown:
            raise LabError(
                f"Cannot change {', '.join(unknown)}; you can change {', '.join(SETTABLE)}."
            )
        wrong = sorted(
            set(changes) & set(CHAT_ONLY if self.config.workload == "shop" else SHOP_ONLY)
        )
        if wrong:
            other = "chat" if self.config.workload == "shop" else "shop"
            raise LabError(
                f"{', '.join(wrong)} is a {other} setting; this is a {self.config.workload} lab."
            )
        new = self.config.replace(**changes)
        old, self.config = self.config, new
        if new.sticky != old.sticky:
            self.balancer.sticky = new.sticky
            self.events.emit(
                "balancer.sticky",
                "Sticky sessions on: each user sticks to one worker (LB cookie)."
                if new.sticky
                else "Sticky sessions off: any request may land on any worker.",
            )
        if new.balancing != old.balancing:
            self.balancer.balancing = new.balancing
            self.events.emit(
                "balancer.balancing",
                f"Balancing is now {new.balancing.replace('_', ' ')}.",
            )
        if new.auto_restart != old.auto_restart:
            self.supervisor.auto_restart = new.auto_restart
            self.events.emit(
                "supervisor.auto_restart",
                "Auto-restart on: crashed workers restart after 100 ms, doubling; "
                "3 crashes in 10 s is a crash loop."
                if new.auto_restart
                else "Auto-restart off: a crashed worker stays down.",
            )
        if new.rate != old.rate and self.crowd is not None:
            self.crowd.rate = new.rate
            self.events.emit("users.rate", f"Users now send {new.rate:g} requests/s in total.")
        if new.users != old.users and self.crowd is not None:
            await self.crowd.resize(new.users)
            self.events.emit("users.count", f"{new.users} virtual users now shop.")
        if self.chat is not None:
            if new.rate != old.rate:
                self.chat.rate = new.rate
                self.events.emit("users.rate", f"Users now send {new.rate:g} messages/s in total.")
            if new.users != old.users:
                await self.chat.resize(new.users)
                self.events.emit("users.count", f"{new.users} virtual users now chat.")
            if new.jitter != old.jitter:
                self.chat.jitter = new.jitter
                self.events.emit(
                    "users.jitter",
                    "Reconnects now wait random(0, min(8 s, 1 s x 2^n)): full jitter spreads "
                    "a storm out."
                    if new.jitter
                    else "Reconnects now happen at once, all together: the thundering herd.",
                )
        store_knobs = (new.store_latency_ms, new.store_jitter_ms)
        if store_knobs != (old.store_latency_ms, old.store_jitter_ms):
            if self.store is None:
                self.config = old
                self._require_store()
            else:
                self.store.proxy.latency_ms, self.store.proxy.jitter_ms = store_knobs
                self.events.emit(
                    "store.latency",
                    f"Every store round trip now takes {new.store_latency_ms:g} ms longer"
                    + (
                        f" (plus up to {new.store_jitter_ms:g} ms)." if new.store_jitter_ms else "."
                    ),
                )
        if (new.work_ms, new.worker_concurrency) != (old.work_ms, old.worker_concurrency):
            self.supervisor.spec.work_ms = new.work_ms
            self.supervisor.spec.concurrency = new.worker_concurrency
            self.events.emit(
                "workers.capacity",
                f"Workers started from now on (restart, add or deploy) serve "
                f"{new.worker_concurrency} request(s) at a time, {new.work_ms:g} ms of work each.",
            )
        if new.session_ttl != old.session_ttl and self.crowd is not None:
            self.crowd.session_ttl = new.session_ttl
            self.events.emit(
                "users.session_ttl",
                f"Users now keep a session {new.session_ttl:g} s, then log out and a new "
                "visitor logs in.",
            )
        if new.handoff != old.handoff:
            if self.store is None:
                self.config = old
                self._require_store()
            self.supervisor.spec.handoff = new.handoff
            self.events.emit(
                "workers.handoff",
                "Handoff on: workers started from now on write their sessions to the store "
                "before a graceful stop."
                if new.handoff
                else "Handoff off: a stopped worker's sessions die with it.",
            )

    async def reset(self) -> None:
        """Zero counters, series and event log; users log out and start fresh journeys."""
        self._require_running()
        self.metrics.reset()
        self.events.clear()
        self.disruptions.clear()
        for worker in self.supervisor.workers.values():
            worker.crashes = 0
        if self.crowd is not None:
            await self.crowd.restart()
        if self.chat is not None:
            await self.chat.restart()
        self.metrics.reset()  # what the users did while logging out is not part of it
        self.events.emit("lab.reset", "Counters and events reset; users start afresh.")

    # -- reading --

    def now(self) -> float:
        """Seconds since start() (the clock of events and series)."""
        return time.monotonic() - self.origin

    def status(self, worker: WorkerProcess) -> str:
        if worker.state == "starting":
            return "starting"
        if not worker.alive:
            return "down"
        if worker.state in ("paused", "draining"):
            return worker.state
        backend = self.balancer.backends.get(worker.name)
        return "up" if backend is not None and backend.healthy else "down"

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable picture of the lab, cheap enough to call 5 times a second."""
        now = time.monotonic()
        if self.chat is not None:
            pinned = self.chat.by_worker()
        elif self.crowd is not None and self.config.sticky:
            pinned = self.crowd.pinned()
        else:
            pinned = {}
        ok_by_worker = self.metrics.ok_by_worker
        total_ok = sum(ok_by_worker.values()) or 1
        workers = []
        for worker in self.supervisor.workers.values():
            backend = self.balancer.backends.get(worker.name)
            alive = worker.alive
            health = backend.health if backend is not None and alive else None
            workers.append(
                {
                    "name": worker.name,
                    "status": self.status(worker),
                    "pid": worker.pid if alive else None,
                    "sessions": backend.sessions if backend and alive else 0,
                    "rps": backend.rps(now) if backend and alive else 0.0,
                    "users": pinned.get(worker.name, []),
                    "crashes": worker.crashes,
                    "crash_loop": worker.crash_loop,
                    "port": worker.port if alive else None,
                    "inflight": backend.inflight if backend else 0,
                    "requests": backend.dispatched if backend else 0,
                    "spawn_ms": worker.spawn_ms,
                    "healthy": bool(backend and backend.healthy and alive),
                    "version": worker.version,
                    "queue": int(health.get("queue", 0)) if health else 0,
                    "connections": int(health.get("connections", 0)) if health else 0,
                    "requests_ok": ok_by_worker.get(worker.name, 0),
                    "share": round(ok_by_worker.get(worker.name, 0) / total_ok, 3),
                }
            )
        config = self.config
        return {
            "id": config.lab_id,
            "mode": config.mode,
            "sticky": config.sticky,
            "balancing": config.balancing,
            "rate": config.rate,
            "users": (
                len(self.crowd.users)
                if self.crowd is not None
                else len(self.chat.users)
                if self.chat is not None
                else config.users
            ),
            "auto_restart": config.auto_restart,
            "workload": config.workload,
            "work_ms": config.work_ms,
            "worker_concurrency": config.worker_concurrency,
            "session_ttl": config.session_ttl,
            "handoff": config.handoff,
            "rooms": config.rooms,
            "jitter": config.jitter,
            "chat": self.chat.summary() if self.chat is not None else None,
            "version": self.version,
            "deploying": self.deploying,
            "deploys": list(self.deploys),
            "store": (
                {**self.store.describe(), "keys": self.store_keys}
                if self.store is not None
                else None
            ),
            "uptime": round(now - self.origin, 3) if self.state != "new" else 0.0,
            "state": self.state,
            "balancer_port": self.balancer.port,
            "workers": workers,
            "metrics": self.metrics.summary(),
            "series": list(self.metrics.series),
            "events": self.events.snapshot(),
        }

    def pids(self) -> list[int]:
        """Every live process this lab started (for orphan checks), its store's too."""
        store = self.store.live_pids() if self.store is not None else []
        return self.supervisor.live_pids() + store

    def all_pids(self) -> list[int]:
        """Every process this lab ever started, alive or not."""
        store = self.store.all_pids if self.store is not None else []
        return list(self.supervisor.all_pids) + list(store)

    @property
    def spawn_times(self) -> dict[str, list[float]]:
        """Spawn-to-ready of every (re)start, in ms, per worker name."""
        return {w.name: list(w.spawn_history) for w in self.supervisor.workers.values()}

    def disruption_log(self) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.disruptions]

    # -- callbacks from the parts --

    def _on_ready(self, worker: WorkerProcess) -> None:
        assert worker.port is not None
        self.balancer.set_address(worker.name, worker.port)

    def _on_exit(self, worker: WorkerProcess) -> None:
        if worker.expected_exit is None and self.config.mode == "stateful":
            backend = self.balancer.backends.get(worker.name)
            if backend is not None and backend.sessions:
                self.events.emit(
                    "worker.sessions_gone",
                    f"The {backend.sessions} sessions in {worker.name}'s memory died with it.",
                )

    def _on_health(self, backend: Backend, healthy: bool, reason: str) -> None:
        name = backend.name
        if not healthy:
            since = ""
            for d in reversed(self.disruptions):
                if d.worker == name and d.marked_down_after_ms is None:
                    d.marked_down_after_ms = round((self.now() - d.t) * 1000, 1)
                    since = f", {d.marked_down_after_ms:.0f} ms after it was {d.action}"
                    break
            self.events.emit(
                "worker.down",
                f"The balancer marked {name} down ({reason}){since}; "
                f"its traffic goes to the other workers.",
            )
        else:
            self.events.emit("worker.up", f"The balancer marked {name} up again ({reason}).")

    async def _tick_loop(self) -> None:
        while True:
            now = self.now()
            await asyncio.sleep(int(now) + 1.001 - now)
            for second in self.metrics.tick():
                if second.losses:
                    self._report_losses(second.losses)
            if self.store is not None and not self.store.busy:
                self.store_keys = await self.store.keys()

    def _report_losses(self, losses: list[tuple[str, str]]) -> None:
        by_worker: dict[str, list[str]] = {}
        for user, worker in losses:
            by_worker.setdefault(worker, []).append(user)
        parts = []
        for worker, users in by_worker.items():
            shown = ", ".join(users[:6]) + (f" and {len(users) - 6} more" if len(users) > 6 else "")
            parts.append(f"{len(users)} created on {worker} ({shown})")
        self.events.emit(
            "users.sessions_lost",
            f"{len(losses)} users found their session gone and had to log in again: "
            + "; ".join(parts)
            + ".",
        )
