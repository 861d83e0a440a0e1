"""What a kill, a stop, a pause or a restart does to real workers, measured by real users."""

from __future__ import annotations

from playground.lab import Lab

from .conftest import LabFactory, eventually


def kinds(lab: Lab) -> list[str]:
    return [event["kind"] for event in lab.events.snapshot()]


def worker(lab: Lab, name: str) -> dict:
    return next(w for w in lab.snapshot()["workers"] if w["name"] == name)


def all_logged_in(lab: Lab) -> bool:
    assert lab.crowd is not None
    return all(user.session for user in lab.crowd.users.values())


async def test_stateful_kill_loses_exactly_the_sessions_the_worker_held(
    make_lab: LabFactory,
) -> None:
    lab = await make_lab(mode="stateful", sticky=True, workers=3, users=9)
    assert lab.crowd is not None
    assert await eventually(lambda: all_logged_in(lab))
    assert lab.metrics.sessions_lost == 0
    # With sticky sessions each user has one session, on the worker its cookie names.
    on_worker_1 = {u.name for u in lab.crowd.users.values() if u.session_worker == "worker-1"}
    assert on_worker_1 == {u.name for u in lab.crowd.users.values() if u.pinned_to == "worker-1"}

    await lab.worker_kill("worker-1")

    kill = lab.disruptions[-1]
    assert kill.sessions_source == "health_before_kill"
    assert kill.sessions_held == len(on_worker_1) > 0
    # Every user whose session was there finds out on its next request, and logs in again.
    assert await eventually(lambda: lab.metrics.relogins >= kill.sessions_held)
    # Then every user's session is put to the test twice more: an extra (wrong) loss, on
    # any worker, would be counted by now.
    crowd = lab.crowd
    assert crowd is not None
    checked = {u.name: u.checked for u in crowd.users.values()}
    assert await eventually(
        lambda: all(u.checked >= checked[u.name] + 2 for u in crowd.users.values())
    )
    assert lab.metrics.sessions_lost == kill.sessions_held
    assert lab.metrics.relogins == kill.sessions_held
    lost_by = {u.name for u in lab.crowd.users.values() if u.lost_on}
    assert lost_by == on_worker_1
    assert all(u.lost_on == {"worker-1": 1} for u in lab.crowd.users.values() if u.lost_on)
    assert lab.metrics.carts_lost <= lab.metrics.sessions_lost
    assert worker(lab, "worker-1")["status"] == "down"
    assert "worker.killed" in kinds(lab) and "worker.down" in kinds(lab)


async def test_stateless_kill_loses_no_session(make_lab: LabFactory) -> None:
    lab = await make_lab(mode="stateless", sticky=True, workers=3, users=9, work_ms=20)
    assert await eventually(lambda: all_logged_in(lab))
    ok_before = lab.metrics.requests_ok

    await lab.worker_kill("worker-1")

    kill = lab.disruptions[-1]
    assert kill.sessions_held == 0  # nothing lives in a stateless worker's memory
    assert await eventually(lambda: lab.metrics.requests_ok > ok_before + 40)
    assert lab.metrics.sessions_lost == 0
    assert lab.metrics.carts_lost == 0
    assert lab.metrics.relogins == 0
    # Only requests that were on their way to it can fail; nothing else.
    assert lab.metrics.requests_failed <= kill.inflight


async def test_stateful_without_sticky_sessions_loses_carts_with_no_kill(
    make_lab: LabFactory,
) -> None:
    lab = await make_lab(mode="stateful", sticky=False, workers=3, users=6)
    assert await eventually(lambda: lab.metrics.carts_lost > 0)
    assert lab.disruptions == []
    assert lab.metrics.requests_failed == 0
    assert lab.metrics.sessions_lost > 0
    assert all(w["status"] == "up" for w in lab.snapshot()["workers"])
    assert all(w["users"] == [] for w in lab.snapshot()["workers"])  # no sticky cookies


async def test_graceful_stop_fails_no_request(make_lab: LabFactory) -> None:
    # Slow requests (100 ms each) so that some are in flight when the SIGTERM lands.
    lab = await make_lab(mode="stateless", workers=2, users=8, work_ms=100)
    backend = lab.balancer.backends["worker-1"]
    assert await eventually(lambda: backend.inflight > 0)

    await lab.worker_stop("worker-1")

    stopped = lab.supervisor.workers["worker-1"]
    assert stopped.returncode == 0  # it drained and exited by itself
    assert await eventually(lambda: lab.metrics.requests_ok > 20)
    assert lab.metrics.requests_failed == 0
    assert lab.metrics.sessions_lost == 0
    assert worker(lab, "worker-1")["status"] == "down"
    assert "worker.stopped" in kinds(lab)


async def test_paused_worker_is_marked_down_then_back_up_when_resumed(
    make_lab: LabFactory,
) -> None:
    lab = await make_lab(mode="stateful", workers=2, users=6)
    backend = lab.balancer.backends["worker-2"]

    await lab.worker_pause("worker-2")

    assert await eventually(lambda: not backend.healthy)
    assert worker(lab, "worker-2")["status"] == "paused"
    assert worker(lab, "worker-2")["pid"] is not None  # alive, only stopped
    down = next(e for e in lab.events.snapshot() if e["kind"] == "worker.down")
    assert "worker-2" in down["text"] and "paused" in down["text"]

    await lab.worker_resume("worker-2")

    assert await eventually(lambda: worker(lab, "worker-2")["status"] == "up")
    assert "worker.up" in kinds(lab)


async def test_restarted_worker_is_back_up_and_gets_traffic(make_lab: LabFactory) -> None:
    lab = await make_lab(mode="stateless", sticky=False, workers=2, users=6)
    old_pid = worker(lab, "worker-2")["pid"]

    await lab.worker_restart("worker-2")

    new = worker(lab, "worker-2")
    assert new["status"] == "up"
    assert new["pid"] not in (None, old_pid)
    backend = lab.balancer.backends["worker-2"]
    # The new process's own request counter (read by the health checks) grows.
    assert await eventually(lambda: backend.health is not None)
    assert backend.health is not None and backend.health["pid"] == new["pid"]
    first = backend.health["requests"]
    assert await eventually(
        lambda: backend.health is not None and backend.health["requests"] > first + 5
    )
    assert len(lab.spawn_times["worker-2"]) == 2


async def test_auto_restart_backs_off_then_flags_a_crash_loop(make_lab: LabFactory) -> None:
    lab = await make_lab(mode="stateless", workers=2, users=4, auto_restart=True)
    w1 = lab.supervisor.workers["worker-1"]

    for crash in (1, 2):
        old_pid = w1.pid
        await lab.worker_kill("worker-1")

        def restarted(old_pid: int | None = old_pid) -> bool:
            return (
                w1.alive
                and w1.pid != old_pid
                and not w1.lock.locked()
                and worker(lab, "worker-1")["status"] == "up"
            )

        assert await eventually(restarted), f"not restarted after crash {crash}"

    restarts = [e["text"] for e in lab.events.snapshot() if e["kind"] == "worker.restarting"]
    assert "in 100 ms" in restarts[0] and "in 200 ms" in restarts[1]

    await lab.worker_kill("worker-1")

    assert await eventually(lambda: w1.crash_loop)
    assert "worker.crash_loop" in kinds(lab)
    # Given up: no restart is scheduled (a restart only ever runs as restart_task), and
    # none was announced after the two before.
    assert w1.restart_task is None
    assert kinds(lab).count("worker.restarting") == 2
    assert not w1.alive
    snap = worker(lab, "worker-1")
    assert snap["crash_loop"] is True and snap["crashes"] == 3 and snap["status"] == "down"

    await lab.worker_restart("worker-1")  # by hand: forgiven, as `systemctl reset-failed`
    assert worker(lab, "worker-1")["crash_loop"] is False
    assert worker(lab, "worker-1")["status"] == "up"


async def test_no_healthy_worker_means_503(make_lab: LabFactory) -> None:
    lab = await make_lab(mode="stateless", workers=1, users=4)
    await lab.worker_kill("worker-1")
    failed = lab.metrics.requests_failed
    assert await eventually(lambda: lab.metrics.requests_failed > failed + 5)
    assert lab.snapshot()["workers"][0]["status"] == "down"
    assert lab.metrics.sessions_lost == 0  # failing is not losing: Redis still has them


async def test_kill_with_requests_in_flight_measures_time_to_marked_down(
    make_lab: LabFactory,
) -> None:
    # Slow requests, so the kill cuts some short: their failures (passive health check)
    # mark the worker down at once (fall=2), while the kill itself is still being carried out.
    lab = await make_lab(mode="stateless", workers=2, users=12, work_ms=200)
    backend = lab.balancer.backends["worker-1"]
    assert await eventually(lambda: backend.inflight >= lab.config.fall)

    await lab.worker_kill("worker-1")

    kill = lab.disruptions[-1]
    assert kill.inflight >= lab.config.fall
    assert await eventually(lambda: kill.marked_down_after_ms is not None)
    down = [e["text"] for e in lab.events.snapshot() if e["kind"] == "worker.down"]
    assert any("after it was killed" in text for text in down)
