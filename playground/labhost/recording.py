"""A lab run's recording, kept by the lab host: a trimmed frame at most once a second, the
per-second chart points and the events, within a size cap. The web tier asks for it
(`lab.recording`) to save the run. No Django imports here.
"""

from __future__ import annotations

import hmac
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from playground.labprotocol import RECORDING_KEPT_AFTER_END, RUN_METRICS

MAX_ENDED = 100  # closed labs' recordings kept at most (the oldest go first)
FRAME_EVERY = 1.0  # seconds of lab time between frames
MAX_FRAMES = 1800  # 30 minutes, a lab's longest life
MAX_EVENTS = 2000
MAX_BYTES = 2_000_000  # frames, points and events together, as JSON
# The settings of the run, as its latest snapshot says.
CONFIG = (
    "mode",
    "workload",
    "sticky",
    "balancing",
    "rate",
    "users",
    "work_ms",
    "worker_concurrency",
    "session_ttl",
    "handoff",
    "auto_restart",
)


def frame_of(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What a replay shows of one snapshot: the counters, each worker, the store."""
    metrics = snapshot.get("metrics") or {}
    store = snapshot.get("store")
    return {
        "t": _lab_time(snapshot),
        "metrics": {key: metrics.get(key, 0) for key in RUN_METRICS},
        "workers": [
            {
                "name": w["name"],
                "status": w["status"],
                "sessions": w.get("sessions", 0),
                "rps": round(float(w.get("rps") or 0.0), 1),
            }
            for w in snapshot.get("workers") or []
        ],
        "store": {"status": store.get("status")} if store else None,
    }


def _lab_time(snapshot: dict[str, Any]) -> float:
    """Seconds since the lab started (the clock of its events and chart points), to 0.1."""
    return round(float(snapshot.get("uptime") or 0.0), 1)


def _size(item: dict[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":")))


@dataclass
class Recording:
    """One lab's recording. `offer` every snapshot the host takes; `due` says whether a
    frame is wanted at lab time `t` (so the host takes no snapshot just for it otherwise)."""

    max_frames: int = MAX_FRAMES
    max_events: int = MAX_EVENTS
    max_bytes: int = MAX_BYTES
    frames: deque[dict[str, Any]] = field(default_factory=deque)
    points: deque[dict[str, Any]] = field(default_factory=deque)
    events: deque[dict[str, Any]] = field(default_factory=deque)
    config: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False  # something was dropped to stay within a cap
    _bytes: int = 0
    _last_seq: int = 0

    def due(self, t: float) -> bool:
        return not self.frames or t - self.frames[-1]["t"] >= FRAME_EVERY

    def offer(self, snapshot: dict[str, Any]) -> None:
        """Keep the new events and chart points of `snapshot`, and a frame if one is due."""
        self.config = {key: snapshot.get(key) for key in CONFIG}
        for event in snapshot.get("events") or []:
            if event.get("seq", 0) > self._last_seq:
                self._last_seq = event["seq"]
                self._keep(self.events, {k: event.get(k) for k in ("seq", "t", "kind", "text")})
        last_t = self.points[-1]["t"] if self.points else None
        for point in snapshot.get("series") or []:
            if last_t is None or point["t"] > last_t:
                self._keep(self.points, dict(point))
        if self.due(_lab_time(snapshot)):
            self._keep(self.frames, frame_of(snapshot))
        self._trim()

    def _keep(self, where: deque[dict[str, Any]], item: dict[str, Any]) -> None:
        where.append(item)
        self._bytes += _size(item)

    def _trim(self) -> None:
        for where, limit in (
            (self.frames, self.max_frames),
            (self.points, self.max_frames),
            (self.events, self.max_events),
        ):
            while len(where) > limit:
                self._drop(where)
        # Over the byte cap: the oldest of the largest part goes first.
        while self._bytes > self.max_bytes and (self.frames or self.points or self.events):
            self._drop(max((self.frames, self.points, self.events), key=len))

    def _drop(self, where: deque[dict[str, Any]]) -> None:
        self._bytes -= _size(where.popleft())
        self.truncated = True

    def describe(self) -> dict[str, Any]:
        """The recording as the `lab.recording` reply carries it (plain JSON)."""
        return {
            "config": dict(self.config),
            "frames": list(self.frames),
            "points": list(self.points),
            "events": list(self.events),
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class EndedRecording:
    """A closed lab's recording, kept RECORDING_KEPT_AFTER_END seconds for its owner."""

    owner: str
    recording: Recording
    until: float

    def owned_by(self, owner: object) -> bool:
        return isinstance(owner, str) and hmac.compare_digest(owner.encode(), self.owner.encode())

    @staticmethod
    def keep(
        ended: dict[str, EndedRecording],
        lab_id: str,
        owner: str,
        recording: Recording,
        *,
        now: float,
    ) -> None:
        """Keep a closed lab's recording in `ended` (lab id -> kept); forget the expired
        ones, and the oldest beyond MAX_ENDED."""
        for old in [key for key, kept in ended.items() if kept.until < now]:
            del ended[old]
        if recording.frames:
            until = now + RECORDING_KEPT_AFTER_END
            ended[lab_id] = EndedRecording(owner=owner, recording=recording, until=until)
        while len(ended) > MAX_ENDED:
            del ended[next(iter(ended))]
