"""The knobs of a lab and their limits. No Django imports here."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .errors import LabError

MODES = ("stateful", "stateless")
BALANCING = ("round_robin", "least_conn")
MAX_WORKERS = 6
MAX_USERS = 50
MIN_RATE = 1.0
MAX_RATE = 200.0
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
}


@dataclass
class LabConfig:
    """Everything that defines a lab. Validated on creation (raises LabError).

    mode: "stateful" keeps sessions in each worker's memory; "stateless" keeps them in
    Redis (redis_url is then required). rate is the total request rate of all users
    together, in requests per second; it sets the users' think time.
    """

    lab_id: str = "lab"
    mode: str = "stateful"
    workers: int = 3
    users: int = 12
    rate: float = 20.0
    sticky: bool = True
    balancing: str = "round_robin"
    auto_restart: bool = False
    redis_url: str | None = None
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
        if self.mode == "stateless" and not self.redis_url:
            raise LabError("A stateless lab needs a Redis server (redis_url) for its sessions.")
        if self.redis_url is not None and not (
            isinstance(self.redis_url, str) and self.redis_url.startswith("redis://")
        ):
            raise LabError("redis_url must look like redis://host:port/db.")
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
