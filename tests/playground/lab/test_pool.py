"""The lab host's warm workers (playground.lab.process.WorkerPool): a lab's start takes
them instead of spawning, each still runs its own lab's settings, restarts and added
workers spawn as before, and no waiting process outlives the pool."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest

from playground.lab import Lab, LabConfig, WorkerPool

from .conftest import eventually


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    async with WorkerPool(4) as warm:
        assert await eventually(lambda: len(warm.pids()) == 4, within=30)
        yield warm
    assert warm.pids() == []


async def test_a_labs_start_takes_warm_workers_and_each_lab_keeps_its_settings(
    pool: WorkerPool, redis_url: str
) -> None:
    waiting = set(pool.pids())
    stateful = Lab(LabConfig(lab_id="warm1", workers=2, users=1, rate=5), pool=pool)
    stateless = Lab(
        LabConfig(
            lab_id="warm2",
            mode="stateless",
            workers=2,
            users=1,
            rate=5,
            worker_concurrency=3,
        ),
        pool=pool,
    )
    try:
        await stateful.start()
        await stateless.start()
        workers = [w for lab in (stateful, stateless) for w in lab.supervisor.workers.values()]
        assert {w.pid for w in workers} == waiting and all(w.warm for w in workers)
        for lab, mode, concurrency in ((stateful, "stateful", 1), (stateless, "stateless", 3)):
            for name in lab.supervisor.workers:
                health = await lab.balancer.fetch_health(name)
                assert health is not None
                assert (health["name"], health["mode"], health["concurrency"]) == (
                    name,
                    mode,
                    concurrency,
                )
        # The stateless workers reach their own lab's store: their users' requests succeed.
        assert await eventually(lambda: stateless.metrics.requests_ok > 0, within=10)
        started = [e["text"] for e in stateless.events.recent if e["kind"] == "worker.started"]
        assert all("a warm process" in text for text in started), started
    finally:
        await stateful.close()
        await stateless.close()
    assert await eventually(lambda: len(pool.pids()) == 4, within=30)  # refilled
    assert not waiting & set(pool.pids())


async def test_restarts_and_added_workers_spawn_cold(pool: WorkerPool) -> None:
    lab = Lab(LabConfig(lab_id="warm3", workers=1, users=1, rate=5), pool=pool)
    try:
        await lab.start()
        assert lab.supervisor.workers["worker-1"].warm
        await lab.worker_restart("worker-1")
        added = await lab.worker_add()
        assert not lab.supervisor.workers["worker-1"].warm
        assert not lab.supervisor.workers[added].warm
    finally:
        await lab.close()


async def test_an_empty_or_broken_pool_means_a_cold_start(pool: WorkerPool) -> None:
    for pid in pool.pids():
        os.killpg(pid, signal.SIGKILL)  # died while waiting: the pool must not hand it out
    lab = Lab(LabConfig(lab_id="warm4", workers=2, users=1, rate=5), pool=pool)
    try:
        await lab.start()
        assert lab.state == "running"
        assert [w.warm for w in lab.supervisor.workers.values()] == [False, False]
    finally:
        await lab.close()


async def test_a_pool_of_size_0_holds_nothing_and_labs_spawn() -> None:
    async with WorkerPool(0) as none:  # runlabs --warm-workers 0
        lab = Lab(LabConfig(lab_id="warm5", workers=1, users=1, rate=5), pool=none)
        try:
            await lab.start()
            assert none.pids() == [] and not lab.supervisor.workers["worker-1"].warm
        finally:
            await lab.close()
