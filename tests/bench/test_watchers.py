"""The watchers benchmark reads each frame's tick from its tail, not by parsing the whole
frame: that tail must be what the consumer sends."""

from __future__ import annotations

import json

from bench.watchers import SENT_AT
from playground.consumers import SnapshotFrames


def test_the_benchmark_finds_the_tick_the_consumer_puts_in_a_frame() -> None:
    frames = SnapshotFrames()
    for sent_at in (1764500000.123456, None):
        text = frames.frame("abc123", {"state": "running"}, sent_at, watching=True)
        match = SENT_AT.search(text[-48:])
        assert match is not None
        assert json.loads(text)["sent_at"] == sent_at
        assert match.group(1) == ("null" if sent_at is None else repr(sent_at))
