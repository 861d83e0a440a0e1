"""Fixtures for lab tests: real worker processes, real Redis, and an orphan check.

Every test here is checked for leaked processes: any worker it spawned, or anything in
those workers' process groups, must be gone (zombies aside) when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psutil
import pytest

from playground.lab import Lab, LabConfig, store
from playground.lab.process import find_orphans, spawned_pids


def every_spawned() -> set[int]:
    """Workers and stores this test process ever started."""
    return spawned_pids() | store.spawned_pids()


def live_children() -> set[int]:
    children = psutil.Process().children(recursive=True)
    return {p.pid for p in children if _status(p) not in (None, psutil.STATUS_ZOMBIE)}


def _status(proc: psutil.Process) -> str | None:
    try:
        return str(proc.status())
    except psutil.Error:
        return None


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    children_before = live_children()
    spawned_before = every_spawned()
    yield
    spawned = every_spawned() - spawned_before
    deadline = time.monotonic() + 3.0
    while True:
        orphans = find_orphans(spawned)
        extra_children = live_children() - children_before
        if not orphans and not extra_children or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert orphans == [], f"worker processes left running: {orphans}"
    assert extra_children == set(), f"child processes left running: {extra_children}"


async def eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll `check` until it holds or `within` seconds pass; return its last value.

    A bound on waiting for an outcome, not a timing claim: it is generous on purpose.
    """
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return check()
        await asyncio.sleep(0.02)
    return True


LabFactory = Callable[..., Awaitable[Lab]]


@pytest.fixture
async def make_lab(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[LabFactory]:
    """Start small labs (2-3 workers, a few users); all closed at the end of the test."""
    labs: list[Lab] = []

    async def factory(**overrides: Any) -> Lab:
        values: dict[str, Any] = {
            "lab_id": f"t{len(labs)}{abs(hash(request.node.nodeid)) % 10**6}",
            "mode": "stateful",
            "workers": 3,
            "users": 9,
            "rate": 40.0,
        }
        values.update(overrides)
        config = LabConfig(**values)
        lab = Lab(config)
        labs.append(lab)
        await lab.start()
        return lab

    yield factory
    for lab in labs:
        await lab.close()
        assert lab.pids() == []
