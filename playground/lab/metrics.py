"""What the virtual users measured: counters, exact latency percentiles, per-second series.

Nothing is modelled here: every figure comes from a request a user really sent. The
percentiles are exact (nearest rank over the kept samples). No Django imports here.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

SERIES_SECONDS = 60
MAX_SAMPLES = 2_000_000  # whole-run samples kept (16 bytes each): ~2.8 h at 200 req/s


def percentile(ordered: list[float] | array[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Second:
    t: int
    ok: int = 0
    failed: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    losses: list[tuple[str, str]] = field(default_factory=list)  # (user, worker)

    def point(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "t": self.t,
            "ok": self.ok,
            "failed": self.failed,
            "lost": self.lost,
            "p50": round(percentile(ordered, 50) * 1000, 2),
            "p99": round(percentile(ordered, 99) * 1000, 2),
        }


class Metrics:
    """Counters since the last reset, a series of the last 60 whole seconds, latencies.

    Time is seconds since `origin` (the lab's start), so series points and events share
    one clock. Call tick() about once a second to close finished seconds.
    """

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.reset()

    def reset(self) -> None:
        self.requests_ok = 0
        self.requests_failed = 0
        self.sessions_lost = 0
        self.carts_lost = 0
        self.relogins = 0
        self.current: Second | None = None
        self.series: deque[dict[str, Any]] = deque(maxlen=SERIES_SECONDS)
        self.closed: list[Second] = []  # seconds closed since the last drain_closed()
        self.sample_times: array[float] = array("d")
        self.sample_latencies: array[float] = array("d")
        self.sorted_latencies: list[float] = []
        self.unsorted: list[float] = []
        self.cached = {"latency_p50_ms": 0.0, "latency_p95_ms": 0.0, "latency_p99_ms": 0.0}
        self.last_rps = 0.0

    def now(self) -> float:
        return time.monotonic() - self.origin

    def _second(self) -> Second:
        t = int(self.now())
        if self.current is None:
            self.current = Second(t)
        elif self.current.t != t:
            self._close_until(t)
        return self.current  # type: ignore[return-value]

    def _close_until(self, t: int) -> None:
        current = self.current
        if current is None or current.t >= t:
            return
        self._close(current)
        for empty in range(current.t + 1, t):
            if t - empty <= SERIES_SECONDS:
                self._close(Second(empty))
        self.current = Second(t)

    def _close(self, second: Second) -> None:
        self.series.append(second.point())
        self.closed.append(second)
        self.last_rps = float(second.ok + second.failed)

    # -- recording (called by the virtual users) --

    def request_ok(self, latency: float) -> None:
        second = self._second()
        self.requests_ok += 1
        second.ok += 1
        second.latencies.append(latency)
        if len(self.sample_latencies) < MAX_SAMPLES:
            self.sample_times.append(self.now())
            self.sample_latencies.append(latency)
            self.unsorted.append(latency)

    def request_failed(self) -> None:
        self.requests_failed += 1
        self._second().failed += 1

    def session_lost(self, user: str, worker: str) -> None:
        second = self._second()
        self.sessions_lost += 1
        second.lost += 1
        second.losses.append((user, worker))

    def cart_lost(self) -> None:
        self.carts_lost += 1

    def relogin(self) -> None:
        self.relogins += 1

    # -- reading --

    def tick(self) -> list[Second]:
        """Close finished seconds, refresh whole-run percentiles; return closed seconds."""
        if self.current is None:
            self.current = Second(int(self.now()))
        self._close_until(int(self.now()))
        if self.unsorted:
            # Two sorted runs: Timsort merges them in linear time.
            self.unsorted.sort()
            self.sorted_latencies += self.unsorted
            self.sorted_latencies.sort()
            self.unsorted = []
            ordered = self.sorted_latencies
            self.cached = {
                f"latency_p{p}_ms": round(percentile(ordered, p) * 1000, 2) for p in (50, 95, 99)
            }
        closed, self.closed = self.closed, []
        return closed

    def summary(self) -> dict[str, Any]:
        return {
            "requests_ok": self.requests_ok,
            "requests_failed": self.requests_failed,
            "sessions_lost": self.sessions_lost,
            "carts_lost": self.carts_lost,
            "relogins": self.relogins,
            **self.cached,
            "rps": self.last_rps,
        }

    def latency_between(self, start: float, end: float = math.inf) -> dict[str, float]:
        """Exact p50/p95/p99 (ms) of requests that finished in [start, end) lab seconds."""
        chosen = sorted(
            latency
            for t, latency in zip(self.sample_times, self.sample_latencies, strict=True)
            if start <= t < end
        )
        return {
            "count": len(chosen),
            **{f"p{p}_ms": round(percentile(chosen, p) * 1000, 2) for p in (50, 95, 99)},
        }
