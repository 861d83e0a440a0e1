"""The lab's metrics in bounded memory: what is kept stays bounded however long a lab runs,
and percentiles from the histograms agree with exact ones to the bucket.

The metrics take their clock; these tests hand in one they move themselves, so an hour of
requests takes no hour (and nothing here depends on how fast the machine is).
"""

from __future__ import annotations

import math
import random

import pytest

from playground.lab.metrics import (
    BLOCK_SECONDS,
    BUCKETS,
    MAX_BLOCKS,
    SERIES_SECONDS,
    Histogram,
    Metrics,
    bucket_bounds,
    bucket_of,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def exact(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def run(metrics: Metrics, clock: Clock, seconds: int, rate: int, rng: random.Random) -> None:
    """`rate` requests in each of `seconds` seconds, ticking once a second like the lab."""
    for _ in range(seconds):
        for i in range(rate):
            clock.t = math.floor(clock.t) + i / rate
            metrics.request_ok(rng.lognormvariate(math.log(0.002), 0.6))
        clock.t = math.floor(clock.t) + 1.0
        metrics.tick()


def test_buckets_cover_every_latency_in_order_with_1_64_resolution() -> None:
    previous = -1
    for micros in range(0, 1 << 22, 7):
        index = bucket_of(micros / 1_000_000)
        assert index >= previous  # monotonic: nearest rank lands in the right bucket
        previous = index
        low, high = bucket_bounds(index)
        assert low <= micros / 1_000_000 < high
        assert high - low <= max(low / 64, 1e-6) + 1e-12
    assert bucket_of(3600.0) == BUCKETS - 1  # slower than the top: counted, in the top bucket
    assert bucket_of(0.0) == 0


@pytest.mark.parametrize("p", [50, 95, 99, 99.9])
def test_histogram_percentiles_agree_with_exact_ones_within_a_bucket(p: float) -> None:
    rng = random.Random(13)
    # A known, skewed distribution: mostly ~2 ms, a tail to hundreds of ms (a killed worker).
    values = [rng.lognormvariate(math.log(0.002), 0.8) for _ in range(20_000)]
    values += [rng.uniform(0.1, 0.6) for _ in range(400)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    truth = exact(values, p)
    found = histogram.percentile(p)
    assert abs(found - truth) <= max(truth / 64, 1e-6)
    assert bucket_of(found) == bucket_of(truth)


def test_what_is_kept_stays_bounded_over_a_long_run_and_loses_no_request() -> None:
    clock = Clock()
    metrics = Metrics(clock(), clock=clock)
    rng = random.Random(7)
    seconds, rate = 3 * 3600, 5  # three hours: past every level of the ring
    run(metrics, clock, seconds, rate, rng)
    spans = metrics.spans()
    assert len(metrics.recent) <= SERIES_SECONDS
    assert len(metrics.blocks) <= MAX_BLOCKS
    assert len(spans) <= SERIES_SECONDS + MAX_BLOCKS + 1
    buckets_kept = sum(len(span.histogram.entries) for span in spans)
    assert buckets_kept <= (SERIES_SECONDS + MAX_BLOCKS + 1) * BUCKETS
    assert len(metrics.whole_run.counts) <= BUCKETS
    assert len(metrics.series) == SERIES_SECONDS
    # Bounded, yet every request is still counted once, in exactly one span.
    assert sum(span.histogram.total for span in spans) == metrics.requests_ok == seconds * rate
    assert metrics.latency_between(0.0)["count"] == seconds * rate


def test_memory_kept_does_not_grow_with_the_length_of_the_run() -> None:
    clock = Clock()
    metrics = Metrics(clock(), clock=clock)
    rng = random.Random(3)
    run(metrics, clock, (MAX_BLOCKS * BLOCK_SECONDS + SERIES_SECONDS) + 600, 10, rng)
    kept = sum(len(span.histogram.entries) for span in metrics.spans())
    spans = len(metrics.spans())
    run(metrics, clock, 3600, 10, rng)  # another hour
    assert len(metrics.spans()) == spans
    # The base (everything older) can gain buckets only up to the number of buckets there are.
    assert sum(len(span.histogram.entries) for span in metrics.spans()) <= kept + BUCKETS


def test_latency_between_splits_the_run_at_the_second() -> None:
    clock = Clock()
    metrics = Metrics(clock(), clock=clock)
    # Ten seconds at 1 ms, then ten at 100 ms: before and after "the kill" at 10.2 s.
    for second in range(20):
        for i in range(10):
            clock.t = 1000.0 + second + i / 10
            metrics.request_ok(0.001 if second < 10 else 0.1)
        metrics.tick()
    clock.t = 1020.5
    metrics.tick()
    before = metrics.latency_between(0.0, 10.2)
    after = metrics.latency_between(10.2)
    assert before["count"] == after["count"] == 100
    assert before["p99_ms"] == 1.0
    assert abs(after["p50_ms"] - 100) <= 100 / 64
    # Older than a minute: counted in ten-second blocks, still all there.
    clock.t = 1200.0
    metrics.tick()
    assert metrics.latency_between(0.0, 10.0)["count"] == 100
    assert metrics.latency_between(10.0)["count"] == 100


def test_the_series_points_keep_their_keys_and_per_second_percentiles() -> None:
    clock = Clock()
    metrics = Metrics(clock(), clock=clock)
    for i in range(100):
        clock.t = 1000.0 + i / 100
        metrics.request_ok((i + 1) / 1000)  # 1..100 ms
    clock.t = 1001.0
    metrics.tick()
    point = metrics.series[-1]
    assert set(point) == {"t", "ok", "failed", "lost", "p50", "p99"}
    assert point["ok"] == 100
    assert abs(point["p50"] - 50) <= 50 / 64
    assert abs(point["p99"] - 99) <= 99 / 64
    summary = metrics.summary()
    assert abs(summary["latency_p95_ms"] - 95) <= 95 / 64
