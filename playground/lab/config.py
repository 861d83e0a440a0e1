"""The knobs of a lab and their limits. No Django imports here."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .errors import LabError

MODES = ("stateful", "stateless")
BALANCING = ("round_robin", "least_conn")
WORKLOADS = ("shop", "chat")
PERSISTENCE = ("none", "aof")
MAX_WORKERS = 6
MAX_USERS = 50
MIN_RATE = 1.0
MAX_RATE = 200.0
# A worker serves WORK_MS of work per request, WORKER_CONCURRENCY at a time: 25 requests/s
# each, so one worker saturates well inside the rate limit (200/s) while the default lab
# (3 workers, 20 requests/s) runs at a quarter of its capacity of 75/s.
WORK_MS = 40.0
WORKER_CONCURRENCY = 1
MAX_WORK_MS = 200.0
MAX_WORKER_CONCURRENCY = 16
MAX_STORE_LATENCY_MS = 100.0
SESSION_TTL = 1800.0  # seconds a user keeps a session before logging out (30 minutes)
MIN_SESSION_TTL = 2.0
MAX_ROOMS = 10
# The engine's rule for a lab id: any name a caller (a test, runscenario, the lab host)
# gives, as long as it is safe in the Redis key prefix of the lab's sessions. Wider than the
# web tier's rule on purpose (playground.labprotocol.LAB_ID): that one guards ids that come
# from browsers and name URLs, Channels groups and registry keys; the engine trusts its
# callers and must not refuse their names ("scenario-1764495600").
LAB_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# The knobs a running lab can change (Lab.set), with the JSON types each accepts: kept here
# only. The web tier's check of a `set` command (playground.labprotocol) is derived from it.
SETTABLE: dict[str, tuple[type, ...]] = {
    "sticky": (bool,),
    "auto_restart": (bool,),
    "rate": (int, float),
    "users": (int,),
    "balancing": (str,),
    "store_latency_ms": (int, float),
    "store_jitter_ms": (int, float),
    "work_ms": (int, float),
    "worker_concurrency": (int,),
    "session_ttl": (int, float),
    "handoff": (bool,),
    "jitter": (bool,),
}
# Settings that mean something to one workload only: a lab of the other refuses them.
SHOP_ONLY = ("handoff", "session_ttl")
CHAT_ONLY = ("rooms", "jitter")


@dataclass
class LabConfig:
    """Everything that defines a lab. Validated on creation (raises LabError).

    mode: "stateful" keeps sessions in each worker's memory; "stateless" keeps them in
    the lab's own store (a redis-server the lab starts). rate is the total request rate
    of all users together, in requests per second; it sets the users' think time.
    work_ms and worker_concurrency are each worker's capacity (settable: workers started
    after a change use it). A lab has a store when it is stateless or hands sessions off
    (handoff); persistence, store_latency_ms and store_jitter_ms are that store's.
    session_ttl: seconds a virtual user keeps its session before it logs out and a new
    visitor logs in (the users who leave and arrive that let a balancer rebalance).
    workload "chat": users hold WebSockets in `rooms` rooms and send `rate` messages per
    second in total; `jitter` switches their reconnect backoff's full jitter (off: the
    thundering herd). handoff and session_ttl are the shop's; rooms and jitter the chat's.
    """

    lab_id: str = "lab"
    mode: str = "stateful"
    workers: int = 3
    users: int = 12
    rate: float = 20.0
    sticky: bool = True
    balancing: str = "round_robin"
    auto_restart: bool = False
    workload: str = "shop"
    work_ms: float = WORK_MS
    worker_concurrency: int = WORKER_CONCURRENCY
    persistence: str = "none"
    store_latency_ms: float = 0.0
    store_jitter_ms: float = 0.0
    handoff: bool = False
    session_ttl: float = SESSION_TTL
    rooms: int | None = None
    jitter: bool = True
    health_interval: float = 0.2
    fall: int = 2
    rise: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise LabError with a message for the learner if any value is out of range."""
        if not isinstance(self.lab_id, str) or not LAB_ID.match(self.lab_id):
            raise LabError("The lab id must be 1 to 40 letters, digits, '-' or '_'.")
        if self.mode not in MODES:
            raise LabError(f"Mode must be 'stateful' or 'stateless', not {self.mode!r}.")
        _check_int("workers", self.workers, 1, MAX_WORKERS)
        _check_int("users", self.users, 1, MAX_USERS)
        _check_number("rate", self.rate, MIN_RATE, MAX_RATE)
        self.rate = float(self.rate)
        _check_bool("sticky", self.sticky)
        _check_bool("auto_restart", self.auto_restart)
        if self.balancing not in BALANCING:
            raise LabError(
                f"Balancing must be 'round_robin' or 'least_conn', not {self.balancing!r}."
            )
        if self.workload not in WORKLOADS:
            raise LabError(f"Workload must be 'shop' or 'chat', not {self.workload!r}.")
        _check_number("work_ms", self.work_ms, 0, MAX_WORK_MS)
        self.work_ms = float(self.work_ms)
        _check_int("worker_concurrency", self.worker_concurrency, 1, MAX_WORKER_CONCURRENCY)
        if self.persistence not in PERSISTENCE:
            raise LabError(f"Persistence must be 'none' or 'aof', not {self.persistence!r}.")
        _check_number("store_latency_ms", self.store_latency_ms, 0, MAX_STORE_LATENCY_MS)
        _check_number("store_jitter_ms", self.store_jitter_ms, 0, MAX_STORE_LATENCY_MS)
        self.store_latency_ms = float(self.store_latency_ms)
        self.store_jitter_ms = float(self.store_jitter_ms)
        _check_bool("handoff", self.handoff)
        if self.handoff and self.mode != "stateful":
            raise LabError("handoff is for stateful labs: a stateless lab has nothing to hand off.")
        _check_number("session_ttl", self.session_ttl, MIN_SESSION_TTL, SESSION_TTL)
        self.session_ttl = float(self.session_ttl)
        _check_bool("jitter", self.jitter)
        if self.workload == "chat":
            if self.rooms is None:
                self.rooms = 3
            _check_int("rooms", self.rooms, 1, MAX_ROOMS)
            if self.handoff:
                raise LabError(
                    "handoff is a shop setting: chat users hold connections, not sessions, "
                    "and a connection cannot be handed to another process."
                )
            if self.session_ttl != SESSION_TTL:
                raise LabError("session_ttl is a shop setting: chat users have no sessions.")
        else:
            if self.rooms is not None:
                raise LabError("rooms is a chat setting: a shop lab has no rooms.")
            if not self.jitter:
                raise LabError(
                    "jitter is a chat setting (how chat users reconnect): a shop lab's users "
                    "hold no connections to reconnect."
                )
        _check_number("health_interval", self.health_interval, 0.05, 5.0)
        self.health_interval = float(self.health_interval)
        _check_int("fall", self.fall, 1, 10)
        _check_int("rise", self.rise, 1, 10)

    def replace(self, **changes: Any) -> LabConfig:
        """A validated copy with some values changed (raises LabError)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise LabError(f"Unknown setting: {', '.join(sorted(unknown))}.")
        return dataclasses.replace(self, **changes)

    @property
    def has_store(self) -> bool:
        """Whether the lab runs its own store (a redis-server of its own)."""
        return self.mode == "stateless" or self.handoff

    @property
    def prefix(self) -> str:
        """Redis key prefix of this lab's sessions."""
        return f"lab:{self.lab_id}:"


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LabError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value  # NaN
        or not low <= value <= high
    ):
        raise LabError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}.")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise LabError(f"{name} must be true or false, not {value!r}.")
