"""The lab's event log, in plain words for the learner. No Django imports here."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
KEEP = 50

EventCallback = Callable[[dict[str, Any]], None]


class EventLog:
    """Numbered events {"seq", "t", "kind", "text"}; t is seconds since the lab started.

    seq keeps growing across reset() so a listener can tell new events from old ones.
    """

    def __init__(self, origin: float, on_event: EventCallback | None = None) -> None:
        self.origin = origin
        self.on_event = on_event
        self.seq = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=KEEP)

    def emit(self, kind: str, text: str) -> dict[str, Any]:
        self.seq += 1
        event = {
            "seq": self.seq,
            "t": round(time.monotonic() - self.origin, 3),
            "kind": kind,
            "text": text,
        }
        self.recent.append(event)
        if self.on_event is not None:
            try:
                self.on_event(dict(event))
            except Exception:  # a listener's bug must not break the lab
                log.exception("on_event listener failed for %s", kind)
        return event

    def clear(self) -> None:
        self.recent.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        return [dict(event) for event in self.recent]
