"""The lab host: a process that runs labs, driven over the Channels layer; one of a fleet.

Labs are stateful (worker processes, a balancer, virtual users), so they live here and never
in a web process. Any number of hosts may serve one site: each announces itself in its
fleet's set in Redis, with its heartbeat (labs running, places, whether it takes new ones),
and the web tier places each new lab on the least loaded. No Django imports: `manage.py
runlabs` hands in a channel layer and a Redis client, and a test can run a host on its own
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from playground import labprotocol
from playground.lab import Lab, LabConfig, LabError
from playground.lab.events import EventCallback
from playground.labhost.experiment import ExperimentInvalid, ExperimentRun, experiment_from_message
from playground.labhost.poll import Poll, PollError
from playground.labhost.recording import EndedRecording, Recording

from .limits import HostLimits

log = logging.getLogger("playground.labhost")

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL = 3  # seconds; the web tier says "the lab host is not running" once it lapses
LAB_KEY_TTL = 5  # registry entries outlive a missed heartbeat or two, not a dead host
FLEET_FORGET = 3600.0  # a fleet entry not renewed for this long is dropped (a host long dead)
START_TIMEOUT = 20.0
MIN_PUSH_GAP = 0.05  # at most 20 snapshots a second per lab, however busy its event stream
# What a lab.create may set (the contract's `config`, see docs/playground-contract.md); the
# rest of LabConfig is the host's business. Not the knobs of a running lab: those are
# playground.lab.config.SETTABLE, which lacks mode and workers.
CREATE_FIELDS = frozenset(
    {
        "mode",
        "workers",
        "users",
        "rate",
        "sticky",
        "balancing",
        "workload",
        "work_ms",
        "worker_concurrency",
        "persistence",
        "store_latency_ms",
        "store_jitter_ms",
        "handoff",
        "session_ttl",
        "rooms",
        "jitter",
        "auto_restart",
    }
)


class HostAlreadyRunning(RuntimeError):
    """Another live lab host already serves this name on this Redis."""


@dataclass(eq=False)
class HostedLab:
    lab: Lab
    owner: str
    created: float
    idle_since: float
    address: str = ""  # the client address it was started from (the web tier's key for it)
    viewers: dict[str, float] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    starter: asyncio.Task[None] | None = None
    publisher: asyncio.Task[None] | None = None
    closer: asyncio.Task[None] | None = None
    last_push: float = 0.0
    record: str | None = None  # its registry entry, as written (the heartbeat re-writes it)
    experiment: ExperimentRun | None = None  # a lesson's experiment, run on this lab
    watch_code: str | None = None  # shared with a class: its read-only link's code
    shared: bool = False  # shared at some point: it lives up to limits.shared_lifetime
    poll: Poll | None = None  # the owner's question to the class, while shared
    recording: Recording = field(default_factory=Recording)  # what a saved run keeps

    @property
    def lab_id(self) -> str:
        return self.lab.config.lab_id

    @property
    def group(self) -> str:
        return labprotocol.group_name(self.lab_id)


class LabHost:
    """Receives lab.* messages on `name`, runs the labs, pushes their snapshots."""

    def __init__(
        self,
        *,
        layer: Any,
        redis: Any,
        name: str = labprotocol.HOST_CHANNEL,
        fleet: str = labprotocol.DEFAULT_FLEET,
        limits: HostLimits | None = None,
        lab_factory: Callable[..., Lab] = Lab,
        clock: Callable[[], float] = time.monotonic,
        claim_timeout: float = HEARTBEAT_TTL + 1,
    ) -> None:
        self.layer = layer
        self.redis = redis
        self.name = name
        self.fleet = fleet
        self.limits = limits or HostLimits()
        self.lab_factory = lab_factory
        self.clock = clock
        self.claim_timeout = claim_timeout
        self.labs: dict[str, HostedLab] = {}
        # Closed labs' recordings, a while longer, so their owners can still save them.
        self.ended: dict[str, EndedRecording] = {}
        self.host_id = uuid.uuid4().hex
        self.stopping = False
        self.redis_down_since: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._emptied = asyncio.Event()  # set while no lab runs here (a drain waits on it)
        self._emptied.set()

    # -- life cycle -------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, *, drain: float = 0.0, hurry: asyncio.Event | None = None
    ) -> None:
        """Serve until `stop` is set, then close every lab and withdraw the heartbeat.

        From `stop` on the host takes no new lab (its heartbeat says so at once). With `drain`
        seconds it first waits, up to that long or until `hurry` is set, for its labs to end
        on their own (their learners close them, or they go idle), still serving them.
        """
        await self._claim()
        loops = [
            asyncio.create_task(self._receive_loop(), name="labhost-receive"),
            asyncio.create_task(self._heartbeat_loop(), name="labhost-heartbeat"),
        ]
        log.info("lab host %r serving (pid %d) in fleet %r", self.name, os.getpid(), self.fleet)
        try:
            await stop.wait()
            self.stopping = True
            await self._refuse_new()
            if drain > 0 and self.labs:
                log.info(
                    "lab host %r draining: %d lab(s), up to %g s", self.name, len(self.labs), drain
                )
                await self._drained(drain, hurry)
        finally:
            self.stopping = True
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.close_all("The lab host stopped.")
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._release()
            log.info("lab host %r stopped", self.name)

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(
            *(self.lab_close(hosted=h, reason=reason) for h in list(self.labs.values())),
            return_exceptions=True,
        )

    async def _drained(self, drain: float, hurry: asyncio.Event | None) -> None:
        waits = [asyncio.create_task(self._emptied.wait())]
        if hurry is not None:
            waits.append(asyncio.create_task(hurry.wait()))
        try:
            await asyncio.wait(waits, timeout=drain, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def _refuse_new(self) -> None:
        """Take no more labs: a heartbeat that says so now, not at the next beat. The host
        stays in the fleet's set while it drains (the web tier then says the hosts are
        restarting, not missing), and leaves it when it stops."""
        with contextlib.suppress(Exception):
            await self.redis.set(
                labprotocol.heartbeat_key(self.name), self._heartbeat_value(), ex=HEARTBEAT_TTL
            )

    def pids(self) -> list[int]:
        """Every live process of every lab (for orphan checks)."""
        return [pid for hosted in self.labs.values() for pid in hosted.lab.pids()]

    async def _claim(self) -> None:
        key = labprotocol.heartbeat_key(self.name)
        # A host that was just killed leaves its key for up to HEARTBEAT_TTL seconds.
        deadline = self.clock() + self.claim_timeout
        while True:
            try:
                if await self.redis.set(key, self._heartbeat_value(), nx=True, ex=HEARTBEAT_TTL):
                    await self.redis.zadd(
                        labprotocol.fleet_key(self.fleet), {self.name: time.time()}
                    )
                    break
            except Exception as exc:
                # Redis down (started during an outage): wait for it, as the heartbeat does,
                # rather than exit and be restarted into the same error until the launcher
                # gives up on the whole site. The deadline counts from when Redis answers.
                if self.redis_down_since is None:
                    self.redis_down_since = self.clock()
                    log.warning("cannot reach Redis to start (%s); retrying every second", exc)
                deadline = self.clock() + self.claim_timeout
                await asyncio.sleep(1)
                continue
            if self.clock() > deadline:
                other = await self.redis.get(key)
                raise HostAlreadyRunning(
                    f"another lab host is serving {self.name!r} on this Redis: {other!r}"
                )
            await asyncio.sleep(0.25)

    async def _release(self) -> None:
        key = labprotocol.heartbeat_key(self.name)
        with contextlib.suppress(Exception):
            await self.redis.zrem(labprotocol.fleet_key(self.fleet), self.name)
            value = await self.redis.get(key)
            if value and json.loads(value).get("id") == self.host_id:
                await self.redis.delete(key)

    def _heartbeat_value(self) -> str:
        """What the web tier places labs by (labprotocol.heartbeat_parse reads it)."""
        return json.dumps(
            {
                "id": self.host_id,
                "pid": os.getpid(),
                "labs": len(self.labs),
                "max_labs": self.limits.max_labs,
                "accepting": not self.stopping,
            }
        )

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._beat()
            try:
                self._housekeeping()
            except Exception:
                log.exception("housekeeping failed")
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _beat(self) -> None:
        """Renew the heartbeat and the registry; re-write the records Redis has lost.

        A failure is an outage of Redis, logged once when it starts and once when it ends
        (not once a second); the labs run on meanwhile, and housekeeping goes on without it.
        """
        try:
            await self._heartbeat()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.redis_down_since is None:
                self.redis_down_since = self.clock()
                log.warning("heartbeat failed (is Redis down?): %s; retrying every second", exc)
            return
        if self.redis_down_since is not None:
            log.warning(
                "heartbeat renewed after %.0f s without Redis", self.clock() - self.redis_down_since
            )
            self.redis_down_since = None

    async def _heartbeat(self) -> None:
        labs = list(self.labs.values())
        fleet = labprotocol.fleet_key(self.fleet)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(
                labprotocol.heartbeat_key(self.name), self._heartbeat_value(), ex=HEARTBEAT_TTL
            )
            pipe.zadd(fleet, {self.name: time.time()})
            pipe.zremrangebyscore(fleet, "-inf", time.time() - FLEET_FORGET)
            for hosted in labs:
                pipe.expire(labprotocol.lab_key(hosted.lab_id), LAB_KEY_TTL)
            for hosted in labs:
                if hosted.watch_code is not None and hosted.closer is None:
                    pipe.set(
                        labprotocol.watch_key(hosted.watch_code), hosted.lab_id, ex=LAB_KEY_TTL
                    )
            renewed = (await pipe.execute())[3 : 3 + len(labs)]
        # A record that could not be renewed is gone: Redis restarted empty (or the key
        # lapsed during an outage) while the lab runs on. Without it the lab's page says it
        # has ended, so it is written again, unless the lab is closing meanwhile.
        lost = {
            hosted.lab_id: hosted.record
            for hosted, ok in zip(labs, renewed, strict=True)
            if not ok
            and hosted.record is not None
            and hosted.closer is None
            and self.labs.get(hosted.lab_id) is hosted
        }
        if lost:
            async with self.redis.pipeline(transaction=False) as pipe:
                for lab_id, record in lost.items():
                    pipe.set(labprotocol.lab_key(lab_id), record, ex=LAB_KEY_TTL)
                await pipe.execute()
            log.warning("re-wrote the registry records of %d running lab(s)", len(lost))

    def _housekeeping(self) -> None:
        """Expire viewer leases; close idle labs and labs past their lifetime. Needs no
        Redis: a lab nobody watches is closed on time during an outage too."""
        now = self.clock()
        for hosted in list(self.labs.values()):
            if hosted.closer is not None:
                continue
            for channel, seen in list(hosted.viewers.items()):
                if now - seen > self.limits.viewer_lease:
                    del hosted.viewers[channel]
                    hosted.idle_since = now
            lifetime = self.limits.shared_lifetime if hosted.shared else self.limits.max_lifetime
            if now - hosted.created > lifetime:
                minutes = round(lifetime / 60)
                self._spawn(
                    self.lab_close(
                        hosted=hosted, reason=f"This lab reached its {minutes}-minute limit."
                    )
                )
            elif not hosted.viewers and now - hosted.idle_since > self.limits.idle_timeout:
                self._spawn(
                    self.lab_close(
                        hosted=hosted,
                        reason=f"No one watched this lab for {self.limits.idle_timeout:g} seconds.",
                    )
                )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- messages ---------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        handlers = {
            "lab.create": self._on_create,
            "lab.attach": self._on_attach,
            "lab.detach": self._on_detach,
            "lab.command": self._on_command,
            "lab.share": self._on_share,
            "lab.answer": self._on_answer,
            "lab.peek": self._on_peek,
            "lab.recording": self._on_recording,
        }
        failing = False
        while True:
            try:
                message = await self.layer.receive(self.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis down: one line when it starts, not a traceback a second.
                if not failing:
                    log.warning("receive failed (is Redis down?): %s; retrying every second", exc)
                failing = True
                await asyncio.sleep(1)
                continue
            failing = False
            handler = handlers.get(message.get("type"))
            if handler is None or not isinstance(message.get("lab_id"), str):
                log.warning("ignored message %.200r", message)
                continue
            self._spawn(self._handle(handler, message))

    async def _handle(
        self, handler: Callable[[dict[str, Any]], Any], message: dict[str, Any]
    ) -> None:
        try:
            await handler(message)
        except Exception:
            log.exception(
                "failed to handle %s for lab %s", message.get("type"), message.get("lab_id")
            )
            await self._reply(message, "lab.error", message="The lab host failed to do that.")

    async def _reply(self, request: dict[str, Any], type_: str, /, **fields: Any) -> None:
        channel = request.get("reply_channel")
        if isinstance(channel, str) and channel:
            with contextlib.suppress(Exception):
                await self.layer.send(
                    channel, {"type": type_, "lab_id": request["lab_id"], **fields}
                )

    def _owned(self, hosted: HostedLab, message: dict[str, Any]) -> bool:
        owner = message.get("owner")
        return isinstance(owner, str) and hmac.compare_digest(owner.encode(), hosted.owner.encode())

    async def _on_create(self, message: dict[str, Any]) -> None:
        lab_id, owner = message["lab_id"], message.get("owner")
        settings = message.get("config")
        if not isinstance(owner, str) or not owner or not isinstance(settings, dict):
            await self._reply(message, "lab.error", code=400, message="Malformed lab.create.")
            return
        if self.stopping:
            await self._reply(message, "lab.error", code=503, message="The lab host is stopping.")
            return
        if lab_id in self.labs:
            await self._reply(message, "lab.error", code=409, message="That lab id is taken.")
            return
        if len(self.labs) >= self.limits.max_labs:
            await self._reply(
                message,
                "lab.error",
                code=503,
                message=f"The lab host is full ({self.limits.max_labs} labs). Try again later.",
            )
            return
        try:
            config = LabConfig(
                lab_id=lab_id,
                **{k: v for k, v in settings.items() if k in CREATE_FIELDS},
            )
        except (LabError, TypeError) as exc:
            await self._reply(message, "lab.error", code=400, message=str(exc))
            return
        experiment = None
        if message.get("experiment") is not None:
            try:
                experiment = experiment_from_message(message["experiment"], config)
            except ExperimentInvalid as exc:
                await self._reply(message, "lab.error", code=400, message=str(exc))
                return
        address = message.get("client")
        address = address if isinstance(address, str) and address else "unknown"
        older = sorted((h for h in self.labs.values() if h.owner == owner), key=lambda h: h.created)
        victims = older[: max(0, len(older) + 1 - self.limits.max_per_owner)]
        refusal = self._address_refusal(address, victims)
        if refusal is not None:
            await self._reply(message, "lab.error", code=refusal[0], message=refusal[1])
            return
        now = self.clock()
        dirty = asyncio.Event()
        lab = self.lab_factory(config, on_event=_waker(dirty))
        hosted = HostedLab(
            lab=lab,
            owner=owner,
            created=now,
            idle_since=now,
            dirty=dirty,
            address=address,
            experiment=experiment,
        )
        # Registered before the first await, so two quick starts cannot both slip under a limit.
        self.labs[lab_id] = hosted
        self._emptied.clear()
        await self._register(hosted)
        await self._reply(message, "lab.created")
        for victim in victims:
            self._spawn(
                self.lab_close(
                    hosted=victim,
                    reason="You started a newer lab, so this one was closed (two labs at most).",
                )
            )
        hosted.starter = self._spawn(self._lab_start(hosted))

    def _address_refusal(self, address: str, victims: list[HostedLab]) -> tuple[int, str] | None:
        """Why a lab from `address` may not start now (code, message), or None.

        Counted over the labs that stay: those this start closes (the owner's oldest) make
        room, so a learner at the limit can still replace a lab.
        """
        staying = [h for h in self.labs.values() if h.closer is None and h not in victims]
        mine = sum(1 for h in staying if h.address == address)
        if mine >= self.limits.max_per_address:
            return 429, (
                f"{mine} labs are already running from your network address, the most one "
                "address may run. Close a lab tab (a lab closes a minute after its last "
                "viewer leaves) and try again."
            )
        if mine and len(staying) >= self.limits.max_labs - self.limits.reserved:
            return 503, (
                "The lab host is nearly full: its last places are kept for people who have "
                "no lab running yet, and your network address already runs one. Close a lab "
                "tab, or try again in a few minutes."
            )
        return None

    async def _register(self, hosted: HostedLab) -> None:
        record = {
            "owner": labprotocol.owner_digest(hosted.owner),
            "host": self.name,
            "mode": hosted.lab.config.mode,
            "created": time.time(),
        }
        if hosted.watch_code is not None:
            record["watch"] = hosted.watch_code
        hosted.record = json.dumps(record)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(labprotocol.lab_key(hosted.lab_id), hosted.record, ex=LAB_KEY_TTL)
            # The new count at once, not at the next beat: a burst of starts spreads out.
            pipe.set(
                labprotocol.heartbeat_key(self.name), self._heartbeat_value(), ex=HEARTBEAT_TTL
            )
            await pipe.execute()

    async def _lab_start(self, hosted: HostedLab) -> None:
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await hosted.lab.start()
        except (LabError, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, LabError) else "The lab took too long to start."
            log.warning("lab %s failed to start: %s", hosted.lab_id, reason)
            self._spawn(self.lab_close(hosted=hosted, reason=f"The lab could not start: {reason}"))
            return
        if hosted.closer is None:
            hosted.publisher = self._spawn(self._publish_loop(hosted))
            if hosted.experiment is not None:
                hosted.experiment.task = self._spawn(
                    hosted.experiment.run(hosted.lab, hosted.dirty.set)
                )

    async def _lab_for_owner(
        self, message: dict[str, Any], *, watchers_too: bool = False
    ) -> HostedLab | None:
        """The running lab the message names, if its sender owns it (or, `watchers_too`,
        holds its watch code while it is shared); else answer why not."""
        hosted = self.labs.get(message["lab_id"])
        if hosted is None or hosted.closer is not None:
            await self._reply(message, "lab.closed", reason="This lab has ended.")
            return None
        if watchers_too and self._watching(hosted, message):
            return hosted
        if not self._owned(hosted, message):
            await self._reply(
                message,
                "lab.refused",
                code=labprotocol.CLOSE_FORBIDDEN,
                message="This lab belongs to another browser session.",
            )
            return None
        return hosted

    async def _on_peek(self, message: dict[str, Any]) -> None:
        """The owner's page of a side-by-side run asks for the latest snapshot (it polls:
        no socket). It counts as one viewer, so the lab lives while that page is open."""
        hosted = await self._lab_for_owner(message)
        if hosted is None:
            return
        hosted.viewers["peek"] = self.clock()
        await self._reply(message, "lab.peeked", snapshot=self._snapshot(hosted))

    def _watching(self, hosted: HostedLab, message: dict[str, Any]) -> bool:
        code = message.get("watch")
        return (
            isinstance(code, str)
            and hosted.watch_code is not None
            and hmac.compare_digest(code.encode(), hosted.watch_code.encode())
        )

    async def _on_attach(self, message: dict[str, Any]) -> None:
        hosted = await self._lab_for_owner(message, watchers_too=True)
        if hosted is None:
            return
        channel = message.get("reply_channel")
        new = True
        if isinstance(channel, str) and channel:
            new = channel not in hosted.viewers
            hosted.viewers[channel] = self.clock()
        # A snapshot for a new viewer only: a renewal (every few seconds per socket) would
        # otherwise cost a snapshot each, 20 a second for a class of 200 watchers.
        await self._reply(message, "lab.attached", snapshot=self._snapshot(hosted) if new else None)

    async def _on_share(self, message: dict[str, Any]) -> None:
        """Share a lab with a class (a read-only watch code) or stop sharing it. Owner only."""
        hosted = await self._lab_for_owner(message)
        if hosted is None:
            return
        if message.get("share") is True:
            if hosted.watch_code is None:
                hosted.watch_code = "".join(
                    secrets.choice(labprotocol.WATCH_ALPHABET)
                    for _ in range(labprotocol.WATCH_CODE_LENGTH)
                )
                hosted.shared = True
                await self._register(hosted)
                await self.redis.set(
                    labprotocol.watch_key(hosted.watch_code), hosted.lab_id, ex=LAB_KEY_TTL
                )
        elif hosted.watch_code is not None:
            await self._unshare(hosted, labprotocol.WATCH_STOPPED)
            await self._register(hosted)
            await self.layer.group_send(
                hosted.group, {"type": "lab.unshared", "lab_id": hosted.lab_id}
            )
        await self._reply(message, "lab.shared", code=hosted.watch_code)

    async def _unshare(self, hosted: HostedLab, why: str) -> None:
        """Retire the lab's watch code: it answers "no longer shared" (410) for a day, and
        tells a watcher who comes back late `why` (labprotocol.WATCH_STOPPED, or
        WATCH_LAB_CLOSED)."""
        code, hosted.watch_code = hosted.watch_code, None
        if code is None:
            return
        hosted.poll = None  # its class has gone
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(labprotocol.watch_key(code))
            pipe.set(labprotocol.watch_ended_key(code), why, ex=labprotocol.WATCH_ENDED_TTL)
            await pipe.execute()

    async def _on_detach(self, message: dict[str, Any]) -> None:
        hosted = self.labs.get(message["lab_id"])
        if hosted is None:
            return
        left = hosted.viewers.pop(str(message.get("reply_channel")), None)
        if left is not None and not hosted.viewers:
            hosted.idle_since = self.clock()

    async def _on_command(self, message: dict[str, Any]) -> None:
        hosted = await self._lab_for_owner(message)
        if hosted is None:
            return
        if message.get("action") == "step":
            if hosted.experiment is None or not hosted.experiment.press():
                await self._reply(message, "lab.error", message="No step is waiting for you now.")
            return
        if message.get("action") in labprotocol.POLL_ACTIONS:
            error = self._poll_command(hosted, message)
            if error:
                await self._reply(message, "lab.error", message=error)
            await self._push(hosted)
            return
        if hosted.starter is not None and not hosted.starter.done():
            await self._reply(message, "lab.error", message="The lab is still starting.")
            return
        operation = _operation(hosted.lab, message)
        if isinstance(operation, str):
            await self._reply(message, "lab.error", message=operation)
            return
        try:
            # One action at a time per lab: the engine sees a simple sequence of orders.
            async with hosted.lock:
                await operation()
        except (LabError, TypeError) as exc:
            await self._reply(message, "lab.error", message=str(exc))
        finally:
            if hosted.closer is None:
                await self._push(hosted)

    # -- a question to the class ---------------------------------------------------------

    def _poll_command(self, hosted: HostedLab, message: dict[str, Any]) -> str | None:
        """The owner asks a question or closes it; why not, if it cannot be done."""
        action = message.get("action")
        if action == "answer":
            return "The class answers from the watch page; you ask with Ask the class."
        if hosted.watch_code is None:
            return "Share the lab with the class first: they answer from the watch link."
        if action == "close_question":
            if hosted.poll is None or hosted.poll.state != "open":
                return "No question is open."
            hosted.poll.close()
            return None
        seq = hosted.poll.seq + 1 if hosted.poll is not None else 1
        try:
            metrics = hosted.lab.snapshot().get("metrics", {})
            hosted.poll = Poll.ask(seq=seq, spec=message.get("value"), metrics=metrics)
        except PollError as exc:
            return str(exc)
        return None

    async def _on_answer(self, message: dict[str, Any]) -> None:
        """A watcher answers the open question: once per viewer (a digest of their session)."""
        hosted = await self._lab_for_owner(message, watchers_too=True)
        if hosted is None:
            return
        viewer = message.get("viewer")
        if not self._watching(hosted, message) or not isinstance(viewer, str) or not viewer:
            await self._reply(message, "lab.error", message="Only the class answers questions.")
            return
        if hosted.poll is None:
            await self._reply(message, "lab.error", message="No question is open.")
            return
        try:
            shown = hosted.poll.answer(viewer[:80], message.get("value"))
        except PollError as exc:
            await self._reply(message, "lab.error", message=str(exc))
            return
        await self._reply(message, "lab.answered", seq=hosted.poll.seq, answer=shown)
        hosted.dirty.set()  # the new distribution, at the next push (coalesced)

    # -- snapshots --------------------------------------------------------------------

    def _snapshot(self, hosted: HostedLab) -> dict[str, Any] | None:
        try:
            snapshot = hosted.lab.snapshot()
            if hosted.experiment is not None:
                snapshot["experiment"] = hosted.experiment.describe()
            if hosted.poll is not None:
                snapshot["poll"] = hosted.poll.describe(snapshot.get("metrics", {}))
            return snapshot
        except Exception:
            # Before start() has finished the engine may have nothing to show yet.
            return None

    async def _push(self, hosted: HostedLab) -> None:
        hosted.last_push = self.clock()
        if not hosted.viewers:
            return  # nobody watches: not even a snapshot is taken
        if self.redis_down_since is not None:
            # The heartbeat found Redis down: no snapshot could reach a viewer, and trying
            # 5 times a second would log as often until the viewers' leases run out.
            return
        snapshot = self._snapshot(hosted)
        if snapshot is None:
            return
        hosted.recording.offer(snapshot)
        # Wall-clock time the snapshot was taken, so a subscriber can measure the lag.
        message = {
            "type": "lab.snapshot",
            "lab_id": hosted.lab_id,
            "snapshot": snapshot,
            "sent_at": time.time(),
        }
        try:
            await self.layer.group_send(hosted.group, message)
        except Exception as exc:  # Redis down: the next push tries again
            log.warning("could not push a snapshot of lab %s: %s", hosted.lab_id, exc)

    async def _publish_loop(self, hosted: HostedLab) -> None:
        interval = self.limits.push_interval
        while True:
            wait = hosted.last_push + interval - self.clock()
            if wait > 0 and not hosted.dirty.is_set():
                # asyncio.timeout, not wait_for (see playground.lab.users), and no extra task
                # per wait (5 a second per lab).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await hosted.dirty.wait()
            hosted.dirty.clear()
            await asyncio.sleep(max(0.0, hosted.last_push + MIN_PUSH_GAP - self.clock()))
            await self._push(hosted)
            self._record(hosted)

    def _record(self, hosted: HostedLab) -> None:
        """A frame a second for the run's recording, also while nobody watches (then
        _push took no snapshot)."""
        if hosted.recording.due(hosted.lab.now()):
            snapshot = self._snapshot(hosted)
            if snapshot is not None:
                hosted.recording.offer(snapshot)

    async def _on_recording(self, message: dict[str, Any]) -> None:
        """The run so far, for its owner to save (playground.labhost.recording); a closed
        lab's for a while after it closed."""
        ended = self.ended.get(message["lab_id"])
        if message["lab_id"] in self.labs or ended is None or ended.until < self.clock():
            hosted = await self._lab_for_owner(message)
            if hosted is not None:
                await self._reply(message, "lab.recording", recording=hosted.recording.describe())
        elif ended.owned_by(message.get("owner")):
            await self._reply(message, "lab.recording", recording=ended.recording.describe())
        else:
            await self._reply(
                message,
                "lab.refused",
                code=labprotocol.CLOSE_FORBIDDEN,
                message="This lab belongs to another browser session.",
            )

    # -- closing ----------------------------------------------------------------------

    async def lab_close(self, *, hosted: HostedLab, reason: str) -> None:
        """Close a lab for good and tell its viewers why. Safe to call more than once."""
        if hosted.closer is None:
            hosted.closer = asyncio.ensure_future(self._close(hosted, reason))
        await asyncio.shield(hosted.closer)

    async def _close(self, hosted: HostedLab, reason: str) -> None:
        if hosted.publisher is not None:
            hosted.publisher.cancel()
        if hosted.experiment is not None and hosted.experiment.task is not None:
            hosted.experiment.task.cancel()
        if hosted.starter is not None and not hosted.starter.done():
            # Let start() finish or fail on its own (it cleans up after itself), bounded.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(START_TIMEOUT):
                    await asyncio.shield(hosted.starter)
            hosted.starter.cancel()
        try:
            await hosted.lab.close()
        except Exception:
            log.exception("closing lab %s failed", hosted.lab_id)
        finally:
            self.labs.pop(hosted.lab_id, None)
            EndedRecording.keep(
                self.ended, hosted.lab_id, hosted.owner, hosted.recording, now=self.clock()
            )
            if not self.labs:
                self._emptied.set()
            with contextlib.suppress(Exception):
                await self.redis.delete(labprotocol.lab_key(hosted.lab_id))
            with contextlib.suppress(Exception):
                await self._unshare(hosted, labprotocol.WATCH_LAB_CLOSED)
            with contextlib.suppress(Exception):
                await self.layer.group_send(
                    hosted.group, {"type": "lab.closed", "lab_id": hosted.lab_id, "reason": reason}
                )
            log.info("lab %s closed: %s", hosted.lab_id, reason)


def _waker(event: asyncio.Event) -> EventCallback:
    """The engine's on_event callback: wake the lab's publisher, never block."""
    loop = asyncio.get_running_loop()

    def on_event(_event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(event.set)

    return on_event


def _operation(lab: Lab, message: dict[str, Any]) -> Callable[[], Awaitable[Any]] | str:
    """The engine call a lab.command asks for, or why there is none."""
    action, worker, value = message.get("action"), message.get("worker"), message.get("value")
    if action in labprotocol.WORKER_ACTIONS:
        if not isinstance(worker, str):
            return f"{action} needs a worker."
        method = {
            "kill": lab.worker_kill,
            "stop": lab.worker_stop,
            "pause": lab.worker_pause,
            "resume": lab.worker_resume,
            "restart": lab.worker_restart,
            "remove_worker": lab.worker_remove,
        }[action]
        return functools.partial(method, worker)
    if action == "add_worker":
        return lab.worker_add
    if action == "reset":
        return lab.reset
    if action == "deploy":
        return lab.deploy
    if action == "kill_store":
        return lab.store_kill
    if action == "restart_store":
        persistence = value.get("persistence") if isinstance(value, dict) else None
        return functools.partial(lab.store_restart, persistence)
    if action == "set":
        if not isinstance(value, dict) or not value:
            return "set needs an object of settings to change."
        return functools.partial(lab.set, **value)
    return f"Unknown action {action!r}."
