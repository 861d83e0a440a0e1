"""What the virtual users measured: counters, latency histograms, per-second series.

Nothing is modelled here: every figure comes from a request a user really sent. Latencies
go into fixed-bucket histograms (log-linear, like HdrHistogram: 64 buckets per power of two,
so a percentile is within 1/64 of the exact one), one per second, kept in bounded memory
however long a lab runs: the last minute second by second, the hour before in ten-second
blocks, anything older merged into one. No Django imports here.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SERIES_SECONDS = 60
BLOCK_SECONDS = 10  # seconds older than the series are kept in blocks this long...
MAX_BLOCKS = 360  # ...for an hour; older ones are merged into a single base histogram

# Histogram buckets, on whole microseconds: below 128 µs one bucket per microsecond, then 64
# buckets per power of two. Bucket width / value <= 1/64: the resolution of a percentile.
SUB_BUCKETS = 64
MAX_MICROS = (1 << 27) - 1  # ~134 s; a slower request counts in the top bucket
BUCKETS = 2 * SUB_BUCKETS + (MAX_MICROS.bit_length() - 7) * SUB_BUCKETS


def bucket_of(latency: float) -> int:
    """The bucket a latency (seconds) falls in."""
    micros = min(MAX_MICROS, max(0, round(latency * 1_000_000)))
    if micros < 2 * SUB_BUCKETS:
        return micros
    shift = micros.bit_length() - 7  # micros >> shift is in [64, 128)
    return 2 * SUB_BUCKETS + (shift - 1) * SUB_BUCKETS + (micros >> shift) - SUB_BUCKETS


def bucket_bounds(index: int) -> tuple[float, float]:
    """The latencies (seconds) a bucket holds: [low, high)."""
    if index < 2 * SUB_BUCKETS:
        return index / 1_000_000, (index + 1) / 1_000_000
    shift, sub = divmod(index - 2 * SUB_BUCKETS, SUB_BUCKETS)
    shift += 1
    low = (SUB_BUCKETS + sub) << shift
    return low / 1_000_000, (low + (1 << shift)) / 1_000_000


def bucket_value(index: int) -> float:
    """The latency (seconds) a bucket stands for: its middle."""
    low, high = bucket_bounds(index)
    return (low + high) / 2 if high - low > 1e-6 else low


class Histogram:
    """Counts per bucket, sparse: a second of 200 requests fills a few dozen buckets."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, latency: float) -> None:
        index = bucket_of(latency)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1

    def merge(self, other: Histogram | PackedHistogram) -> None:
        for index, count in other.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.total += other.total

    def items(self) -> Iterable[tuple[int, int]]:
        return self.counts.items()

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile (seconds), to the bucket; 0.0 when empty."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.total))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return bucket_value(index)
        raise AssertionError("unreachable: the counts add up to total")

    def packed(self) -> PackedHistogram:
        return PackedHistogram(self)


class PackedHistogram:
    """A closed histogram, read-only: (bucket << 32 | count) in one array, 8 bytes a bucket
    (a dict would take ten times that, and a lab keeps hundreds of these)."""

    __slots__ = ("entries", "total")

    def __init__(self, source: Histogram) -> None:
        self.entries = array("Q", ((i << 32) | c for i, c in sorted(source.counts.items())))
        self.total = source.total

    def items(self) -> Iterable[tuple[int, int]]:
        return ((entry >> 32, entry & 0xFFFFFFFF) for entry in self.entries)


@dataclass
class Span:
    """The latencies of the requests that finished in [start, end) lab seconds."""

    start: float
    end: float
    histogram: PackedHistogram

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


@dataclass
class Second:
    t: int
    ok: int = 0
    failed: int = 0
    lost: int = 0
    histogram: Histogram = field(default_factory=Histogram)
    losses: list[tuple[str, str]] = field(default_factory=list)  # (user, worker)

    def point(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "ok": self.ok,
            "failed": self.failed,
            "lost": self.lost,
            "p50": round(self.histogram.percentile(50) * 1000, 2),
            "p99": round(self.histogram.percentile(99) * 1000, 2),
        }


class Metrics:
    """Counters since the last reset, a series of the last 60 whole seconds, latencies.

    Time is seconds since `origin` (the lab's start), so series points and events share
    one clock (`clock`, time.monotonic unless a test hands in its own). Call tick() about
    once a second to close finished seconds.
    """

    def __init__(self, origin: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = origin
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.requests_ok = 0
        self.requests_failed = 0
        self.sessions_lost = 0
        self.carts_lost = 0
        self.relogins = 0
        self.ok_by_worker: dict[str, int] = {}
        self.current: Second | None = None
        self.series: deque[dict[str, Any]] = deque(maxlen=SERIES_SECONDS)
        self.closed: list[Second] = []  # seconds closed since the last drain_closed()
        self.whole_run = Histogram()
        # Closed seconds' latencies: the last minute one span a second, older ones in
        # BLOCK_SECONDS blocks (at most MAX_BLOCKS), anything older in `base`.
        self.recent: deque[Span] = deque()
        self.blocks: deque[Span] = deque()
        self.base: Span | None = None
        self.cached = {"latency_p50_ms": 0.0, "latency_p95_ms": 0.0, "latency_p99_ms": 0.0}
        self.last_rps = 0.0

    def now(self) -> float:
        return self.clock() - self.origin

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
        if second.histogram.total:
            self._keep(Span(second.t, second.t + 1, second.histogram.packed()))

    def _keep(self, span: Span) -> None:
        self.recent.append(span)
        while self.recent and self.recent[0].start <= span.start - SERIES_SECONDS:
            old = self.recent.popleft()
            start = old.start // BLOCK_SECONDS * BLOCK_SECONDS
            if self.blocks and self.blocks[-1].start == start:
                self.blocks[-1] = _merged(self.blocks[-1], old)
            else:
                self.blocks.append(
                    Span(start, start + BLOCK_SECONDS, _merged_histogram([old.histogram]))
                )
        while len(self.blocks) > MAX_BLOCKS:
            old = self.blocks.popleft()
            self.base = old if self.base is None else _merged(self.base, old)

    # -- recording (called by the virtual users) --

    def request_ok(self, latency: float, worker: str = "?") -> None:
        second = self._second()
        self.requests_ok += 1
        self.ok_by_worker[worker] = self.ok_by_worker.get(worker, 0) + 1
        second.ok += 1
        second.histogram.add(latency)
        self.whole_run.add(latency)

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
        self.cached = {
            f"latency_p{p}_ms": round(self.whole_run.percentile(p) * 1000, 2) for p in (50, 95, 99)
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

    def spans(self) -> list[Span]:
        """Every kept span of closed seconds, oldest first (what latency_between reads)."""
        return [*([self.base] if self.base else []), *self.blocks, *self.recent]

    def latency_between(self, start: float, end: float = math.inf) -> dict[str, float]:
        """p50/p95/p99 (ms) of requests that finished in [start, end) lab seconds.

        To the bucket (1/64) in latency; in time, a span counts if its middle is in the
        range: to the second over the last minute, to 10 s over the hour before. The second
        still open counts too (runscenario reads right after its last tick).
        """
        chosen = Histogram()
        for span in self.spans():
            if start <= span.middle < end:
                chosen.merge(span.histogram)
        current = self.current
        if current is not None and start <= current.t + 0.5 < end:
            chosen.merge(current.histogram)
        return {
            "count": chosen.total,
            **{f"p{p}_ms": round(chosen.percentile(p) * 1000, 2) for p in (50, 95, 99)},
        }


def _merged_histogram(parts: Iterable[Histogram | PackedHistogram]) -> PackedHistogram:
    merged = Histogram()
    for part in parts:
        merged.merge(part)
    return merged.packed()


def _merged(first: Span, second: Span) -> Span:
    return Span(
        min(first.start, second.start),
        max(first.end, second.end),
        _merged_histogram([first.histogram, second.histogram]),
    )
