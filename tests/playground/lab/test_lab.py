"""The Lab's public API: config validation, actions, knobs, snapshot, clean-up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from playground.lab import Lab, LabConfig, LabError
from playground.lab import process as process_module

from .conftest import LabFactory, eventually

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "stateless-ish"),
        ("workers", 0),
        ("workers", 7),
        ("workers", 2.5),
        ("workers", True),
        ("users", 0),
        ("users", 51),
        ("rate", 0.5),
        ("rate", 201),
        ("rate", float("nan")),
        ("rate", "fast"),
        ("sticky", "yes"),
        ("balancing", "random"),
        ("auto_restart", 1),
        ("lab_id", "no spaces allowed"),
        ("lab_id", ""),
        ("health_interval", 0),
        ("fall", 0),
        ("rise", 11),
        ("workload", "video"),
        ("work_ms", -1),
        ("work_ms", 201),
        ("worker_concurrency", 0),
        ("worker_concurrency", 17),
        ("persistence", "rdb"),
        ("store_latency_ms", 101),
        ("store_jitter_ms", -1),
        ("handoff", "yes"),
        ("session_ttl", 1),
        ("session_ttl", 1801),
        ("rooms", 3),  # a shop lab has no rooms
        ("jitter", "on"),
    ],
)
def test_bad_config_values_raise_lab_error(field: str, value: Any) -> None:
    with pytest.raises(LabError) as info:
        LabConfig(**{field: value})
    assert str(info.value)  # a message for the learner


def test_settings_that_contradict_each_other_raise_lab_error() -> None:
    with pytest.raises(LabError, match="handoff is for stateful labs"):
        LabConfig(mode="stateless", handoff=True)
    with pytest.raises(LabError, match="rooms"):
        LabConfig(workload="chat", rooms=11)


def test_a_lab_has_a_store_when_stateless_or_handing_off() -> None:
    assert LabConfig(mode="stateless").has_store
    assert LabConfig(mode="stateful", handoff=True).has_store
    assert not LabConfig(mode="stateful").has_store


def test_good_config_is_accepted() -> None:
    config = LabConfig(
        lab_id="ab12cd",
        mode="stateless",
        workers=6,
        users=50,
        rate=200,
        sticky=False,
        balancing="least_conn",
        auto_restart=True,
        work_ms=0,
        worker_concurrency=16,
        persistence="aof",
        store_latency_ms=100,
        session_ttl=2,
    )
    assert config.prefix == "lab:ab12cd:"
    assert LabConfig(rate=1).rate == 1.0


def test_engine_imports_no_django() -> None:
    code = (
        "import sys, playground.lab, playground.worker.life, playground.lab.process;"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


async def test_snapshot_has_the_documented_shape_and_is_json(make_lab: LabFactory) -> None:
    lab = await make_lab(workers=2, users=4)
    assert await eventually(lambda: len(lab.metrics.series) >= 1 and lab.metrics.requests_ok > 0)
    snap = json.loads(json.dumps(lab.snapshot()))
    assert {
        "id",
        "mode",
        "sticky",
        "balancing",
        "rate",
        "users",
        "auto_restart",
        "uptime",
        "workers",
        "metrics",
        "series",
        "events",
    } <= set(snap)
    assert [w["name"] for w in snap["workers"]] == ["worker-1", "worker-2"]
    for w in snap["workers"]:
        assert {
            "name",
            "status",
            "pid",
            "sessions",
            "rps",
            "users",
            "crashes",
            "crash_loop",
        } <= set(w)
        assert w["status"] == "up" and w["pid"] in lab.pids()
    assert {
        "requests_ok",
        "requests_failed",
        "sessions_lost",
        "carts_lost",
        "relogins",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "rps",
    } <= set(snap["metrics"])
    assert set(snap["series"][0]) == {"t", "ok", "failed", "lost", "p50", "p99"}
    assert set(snap["events"][0]) == {"seq", "t", "kind", "text"}
    assert sorted(u for w in snap["workers"] for u in w["users"]) == sorted(
        f"user-{n}" for n in range(1, 5)
    )
    assert set(lab.spawn_times) == {"worker-1", "worker-2"}
    # Sessions held and requests/s per worker come from the workers' own /health.
    assert await eventually(
        lambda: (
            sum(w["sessions"] for w in lab.snapshot()["workers"]) == 4
            and all(w["rps"] > 0 for w in lab.snapshot()["workers"])
        )
    )


async def test_actions_refuse_what_is_not_possible(make_lab: LabFactory) -> None:
    lab = await make_lab(workers=2, users=2)
    with pytest.raises(LabError, match="no worker named"):
        await lab.worker_kill("worker-9")
    with pytest.raises(LabError, match="not paused"):
        await lab.worker_resume("worker-1")
    with pytest.raises(LabError, match="Cannot change"):
        await lab.set(mode="stateless")
    with pytest.raises(LabError):
        await lab.set(rate=1000)
    assert lab.config.rate == 40.0  # a refused change changes nothing
    await lab.worker_pause("worker-1")
    with pytest.raises(LabError, match="already paused"):
        await lab.worker_pause("worker-1")
    await lab.worker_kill("worker-1")  # a paused worker can be killed
    with pytest.raises(LabError, match="not running"):
        await lab.worker_kill("worker-1")
    await lab.worker_remove("worker-1")
    with pytest.raises(LabError, match="at least one"):
        await lab.worker_remove("worker-2")


async def test_add_and_remove_workers(make_lab: LabFactory) -> None:
    lab = await make_lab(workers=2, users=4, sticky=False)
    name = await lab.worker_add()
    assert name == "worker-3"
    assert await eventually(
        lambda: (lab.balancer.backends[name].health or {}).get("requests", 0) > 0
    )
    removed_pid = lab.supervisor.workers["worker-1"].pid
    await lab.worker_remove("worker-1")
    assert [w["name"] for w in lab.snapshot()["workers"]] == ["worker-2", "worker-3"]
    assert removed_pid not in lab.pids()
    assert await lab.worker_add() == "worker-4"
    for _ in range(2):
        await lab.worker_add()
    assert len(lab.snapshot()["workers"]) == 5
    assert await lab.worker_add() == "worker-7"  # names are never reused
    with pytest.raises(LabError, match="at most 6"):
        await lab.worker_add()


async def test_set_changes_the_knobs(make_lab: LabFactory) -> None:
    lab = await make_lab(workers=2, users=4)
    await lab.set(sticky=False, rate=80, balancing="least_conn", users=6, auto_restart=True)
    snap = lab.snapshot()
    assert (
        snap["sticky"],
        snap["rate"],
        snap["balancing"],
        snap["users"],
        snap["auto_restart"],
    ) == (False, 80.0, "least_conn", 6, True)
    assert lab.balancer.sticky is False and lab.supervisor.auto_restart is True
    await lab.set(users=2)
    assert lab.crowd is not None and sorted(lab.crowd.users) == ["user-1", "user-2"]
    assert {
        "balancer.sticky",
        "balancer.balancing",
        "users.rate",
        "users.count",
        "supervisor.auto_restart",
    } <= {e["kind"] for e in lab.snapshot()["events"]}


async def test_reset_zeroes_counters_and_events(make_lab: LabFactory) -> None:
    lab = await make_lab(workers=2, users=4, sticky=False)  # stateful: sessions get lost
    assert await eventually(lambda: lab.metrics.sessions_lost > 0)
    seq = lab.events.seq
    await lab.reset()
    snap = lab.snapshot()
    assert snap["metrics"]["sessions_lost"] == 0 and snap["metrics"]["requests_ok"] == 0
    assert snap["series"] == []
    assert [e["kind"] for e in snap["events"]] == ["lab.reset"]
    assert snap["events"][0]["seq"] == seq + 1  # numbering goes on
    assert await eventually(lambda: lab.metrics.requests_ok > 0)


async def test_close_is_idempotent_and_leaves_nothing(make_lab: LabFactory) -> None:
    lab = await make_lab(workers=2, users=2)
    pids = lab.pids()
    assert len(pids) == 2
    await lab.close()
    await lab.close()
    assert lab.pids() == []
    assert process_module.find_orphans(lab.all_pids()) == []
    with pytest.raises(LabError, match="not running"):
        await lab.worker_kill("worker-1")


async def test_a_worker_that_cannot_start_fails_the_lab_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # worker-2 is a process that never says it is ready: start must kill it and the others
    # (spawned at the same time).
    original = process_module.WorkerSpec.command

    def command(self: process_module.WorkerSpec, name: str) -> list[str]:
        if name == "worker-2":
            return [
                sys.executable,
                "-c",
                "import sys, time; print('booting', file=sys.stderr, flush=True); time.sleep(60)",
            ]
        return original(self, name)

    monkeypatch.setattr(process_module.WorkerSpec, "command", command)
    monkeypatch.setattr(process_module, "READY_TIMEOUT", 1.0)
    lab = Lab(LabConfig(workers=3, users=2))
    with pytest.raises(LabError, match="worker-2"):
        await lab.start()
    assert lab.state == "closed"
    assert lab.pids() == []
    assert len(lab.all_pids()) == 3
    assert process_module.find_orphans(lab.all_pids()) == []


async def test_a_worker_that_crashes_at_start_reports_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def command(self: process_module.WorkerSpec, name: str) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit('no port for you')"]

    monkeypatch.setattr(process_module.WorkerSpec, "command", command)
    lab = Lab(LabConfig(workers=1, users=1))
    with pytest.raises(LabError, match="no port for you"):
        await lab.start()
    assert lab.pids() == []


@pytest.mark.parametrize("after", [0.0, 0.002, 0.02])
async def test_closing_while_a_worker_starts_leaks_nothing(
    make_lab: LabFactory, after: float
) -> None:
    lab = await make_lab(workers=1, users=2)
    adding = asyncio.create_task(lab.worker_add())
    await asyncio.sleep(after)  # the new worker is being spawned, at some stage
    await lab.close()
    assert lab.pids() == []
    with pytest.raises(LabError):
        await adding
    assert process_module.find_orphans(lab.all_pids()) == []
