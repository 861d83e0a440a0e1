"""A lab: worker processes behind a load balancer, driven by virtual users, measured.

No Django imports here: the web, the runscenario command and the tests all drive it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import LabConfig
from .errors import LabError

EventCallback = Callable[[dict[str, Any]], None]


class Lab:
    """One running lab. Create it, `await start()`, drive it, always `await close()`."""

    def __init__(self, config: LabConfig, on_event: EventCallback | None = None) -> None:
        """on_event, if given, is called (synchronously, must not block) with every event
        dict {"seq", "t", "kind", "text"} as it happens."""
        self.config = config
        self.on_event = on_event

    async def start(self) -> None:
        """Spawn the workers, wait until they accept connections, start the balancer and
        the users. On any failure everything started is cleaned up and LabError raised."""
        raise LabError("not implemented yet")

    async def close(self) -> None:
        """Stop users, balancer and every worker (SIGKILL after a short grace).
        Idempotent; when it returns no process of the lab is left."""

    async def worker_kill(self, name: str) -> None:
        """SIGKILL the worker's process group: a crash."""
        raise LabError("not implemented yet")

    async def worker_stop(self, name: str) -> None:
        """SIGTERM: the worker stops accepting, drains in-flight requests and exits."""
        raise LabError("not implemented yet")

    async def worker_pause(self, name: str) -> None:
        """SIGSTOP: a hung worker (accepts TCP connections in the kernel, answers nothing)."""
        raise LabError("not implemented yet")

    async def worker_resume(self, name: str) -> None:
        """SIGCONT a paused worker."""
        raise LabError("not implemented yet")

    async def worker_restart(self, name: str) -> None:
        """Stop the worker (gracefully if it runs, SIGKILL if paused) and start it again."""
        raise LabError("not implemented yet")

    async def worker_add(self) -> str:
        """Start one more worker (next number) and return its name."""
        raise LabError("not implemented yet")

    async def worker_remove(self, name: str) -> None:
        """Stop the worker gracefully and take it out of the lab."""
        raise LabError("not implemented yet")

    async def set(self, **changes: Any) -> None:
        """Change any of sticky, rate, balancing, auto_restart, users (validated)."""
        raise LabError("not implemented yet")

    async def reset(self) -> None:
        """Zero counters, series and event log; users start fresh journeys."""
        raise LabError("not implemented yet")

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable picture of the lab, cheap enough to call 5 times a second."""
        raise LabError("not implemented yet")

    def pids(self) -> list[int]:
        """Every live process this lab started (for orphan checks)."""
        return []
