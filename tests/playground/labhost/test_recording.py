"""A lab's recording: a trimmed frame at most once a second, each event and chart point
once, and caps on frames and bytes that drop the oldest first."""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from typing import Any

import pytest

from playground.labclient import LabEnded, LabRefused, alab_create, alab_recording
from playground.labhost.recording import MAX_ENDED, EndedRecording, Recording, frame_of
from playground.labprotocol import RECORDING_KEPT_AFTER_END, RUN_METRICS
from tests.playground.conftest import RunningHost, eventually


def snapshot(t: float, *, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A snapshot shaped like Lab.snapshot() (the parts a recording reads, and some more)."""
    return {
        "mode": "stateless",
        "workload": "shop",
        "sticky": False,
        "rate": 20.0,
        "users": 12,
        "uptime": t,
        "balancer_port": 4242,
        "metrics": {
            **dict.fromkeys(RUN_METRICS, 1),
            "requests_ok": round(t * 10),
            "rps": 19.5,
        },
        "workers": [
            {"name": "worker-1", "status": "up", "pid": 99, "sessions": 4, "rps": 9.75, "port": 1},
            {"name": "worker-2", "status": "down", "pid": None, "sessions": 0, "rps": 0.0},
        ],
        "store": {"status": "up", "pid": 100, "keys": 7},
        "series": [
            {"t": s, "ok": 20, "failed": 0, "lost": 0, "p50": 41.0, "p99": 80.0}
            for s in range(max(0, int(t) - 60), int(t))
        ],
        "events": events or [],
    }


def event(seq: int, t: float, kind: str = "worker.killed") -> dict[str, Any]:
    return {"seq": seq, "t": t, "kind": kind, "text": f"worker-1 killed (SIGKILL, pid {seq})."}


def test_a_frame_keeps_the_figures_each_worker_and_the_store_and_nothing_else() -> None:
    frame = frame_of(snapshot(3.04))
    assert frame == {
        "t": 3.0,
        "metrics": {**dict.fromkeys(RUN_METRICS, 1), "requests_ok": 30, "rps": 19.5},
        "workers": [
            {"name": "worker-1", "status": "up", "sessions": 4, "rps": 9.8},
            {"name": "worker-2", "status": "down", "sessions": 0, "rps": 0.0},
        ],
        "store": {"status": "up"},
    }
    assert frame_of({**snapshot(1), "store": None})["store"] is None


def test_at_most_one_frame_a_second_whatever_the_rate_of_snapshots() -> None:
    recording = Recording()
    for tick in range(26):  # 5 a second for 5 seconds
        recording.offer(snapshot(tick / 5))
    assert [f["t"] for f in recording.frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert recording.due(6.0) and not recording.due(5.9)
    assert [p["t"] for p in recording.points] == [0, 1, 2, 3, 4]  # each second once
    assert recording.config["mode"] == "stateless" and recording.config["users"] == 12
    assert not recording.truncated


def test_each_event_is_kept_once_though_every_snapshot_repeats_it() -> None:
    recording = Recording()
    kill = event(1, 1.2)
    recording.offer(snapshot(1.0))
    recording.offer(snapshot(1.4, events=[kill]))
    recording.offer(snapshot(1.6, events=[kill, event(2, 1.5, "users.rate")]))
    recording.offer(snapshot(2.0, events=[kill, event(2, 1.5, "users.rate")]))
    assert [(e["seq"], e["kind"]) for e in recording.events] == [
        (1, "worker.killed"),
        (2, "users.rate"),
    ]
    assert recording.events[0] == kill


def test_the_frame_cap_keeps_the_latest_frames() -> None:
    recording = Recording(max_frames=3)
    for second in range(6):
        recording.offer(snapshot(float(second)))
    assert [f["t"] for f in recording.frames] == [3.0, 4.0, 5.0]
    assert len(recording.points) <= 3
    assert recording.truncated


def test_the_byte_cap_drops_the_oldest_and_holds() -> None:
    cap = 3000
    recording = Recording(max_bytes=cap)
    for second in range(40):
        recording.offer(snapshot(float(second), events=[event(second + 1, second)]))
        described = recording.describe()
        parts = [*described["frames"], *described["points"], *described["events"]]
        assert sum(len(json.dumps(p, separators=(",", ":"))) for p in parts) <= cap
    assert recording.truncated
    assert recording.frames[-1]["t"] == 39.0  # the newest is kept
    assert recording.frames[0]["t"] > 0.0
    assert json.loads(json.dumps(recording.describe())) == recording.describe()


async def test_the_host_records_an_unwatched_lab_and_gives_the_recording_to_its_owner(
    labhost: RunningHost,
) -> None:
    """`lab.recording` over the real Channels layer, through the web tier's client."""
    owner, lab_id = uuid.uuid4().hex, uuid.uuid4().hex[:10]
    config = {"mode": "stateful", "workers": 2, "users": 3, "rate": 10.0, "sticky": True}
    await alab_create(lab_id=lab_id, owner=owner, config=config)
    hosted = labhost.host.labs[lab_id]
    await eventually(lambda: len(hosted.recording.frames) >= 2, 30)
    async with hosted.lock:
        await hosted.lab.worker_kill("worker-1")
    await eventually(lambda: hosted.recording.frames[-1]["t"] > hosted.lab.now() - 1 > 0, 10)
    frames_at_kill = len(hosted.recording.frames)
    await eventually(lambda: len(hosted.recording.frames) >= frames_at_kill + 2, 10)

    recording = await alab_recording(lab_id=lab_id, owner=owner, hosts=[labhost.name])
    times = [f["t"] for f in recording["frames"]]
    assert len(times) >= 4 and all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))
    assert recording["config"]["mode"] == "stateful"
    kills = [e for e in recording["events"] if e["kind"] == "worker.killed"]
    assert len(kills) == 1 and kills[0]["text"].startswith("worker-1 killed")
    after = [f for f in recording["frames"] if f["t"] > kills[0]["t"] + 0.5]
    assert after
    assert next(w for w in after[-1]["workers"] if w["name"] == "worker-1")["status"] == "down"
    assert recording["points"] and recording["truncated"] is False

    with pytest.raises(LabRefused, match="another browser session"):
        await alab_recording(lab_id=lab_id, owner="someone else", hosts=[labhost.name])
    with pytest.raises(LabEnded):
        await alab_recording(lab_id="nosuchlab1", owner=owner, hosts=[labhost.name])

    # Closed, it is still its owner's to save, for a while; then it is gone.
    await labhost.host.lab_close(hosted=hosted, reason="Closed by a test.")
    assert lab_id not in labhost.host.labs
    kept = await alab_recording(lab_id=lab_id, owner=owner, hosts=[labhost.name])
    assert kept["frames"][: len(recording["frames"])] == recording["frames"]
    with pytest.raises(LabRefused, match="another browser session"):
        await alab_recording(lab_id=lab_id, owner="someone else", hosts=[labhost.name])
    ended = labhost.host.ended[lab_id]
    labhost.host.ended[lab_id] = dataclasses.replace(ended, until=labhost.host.clock() - 1)
    with pytest.raises(LabEnded, match="10 minutes after it ends"):
        await alab_recording(lab_id=lab_id, owner=owner, hosts=[labhost.name])


def test_ended_recordings_expire_and_are_bounded() -> None:
    recording = Recording()
    recording.offer(snapshot(1.0))
    ended: dict[str, EndedRecording] = {}
    EndedRecording.keep(ended, "old", "o", recording, now=0.0)
    EndedRecording.keep(ended, "empty", "o", Recording(), now=1.0)  # nothing to keep
    assert list(ended) == ["old"] and ended["old"].until == RECORDING_KEPT_AFTER_END
    assert ended["old"].owned_by("o") and not ended["old"].owned_by("x")
    assert not ended["old"].owned_by(None)
    EndedRecording.keep(ended, "new", "o", recording, now=RECORDING_KEPT_AFTER_END + 1)
    assert list(ended) == ["new"]
    for n in range(MAX_ENDED + 5):
        EndedRecording.keep(ended, f"lab{n}", "o", recording, now=RECORDING_KEPT_AFTER_END + 2)
    assert len(ended) == MAX_ENDED and "new" not in ended and f"lab{MAX_ENDED + 4}" in ended
