"""A question the owner of a shared lab asks the class, and the class's answers.

It lives with the lab in the lab host, so its distribution reaches every screen in the
lab's snapshots (no second channel), and it ends with the lab. Anonymous: an answer is kept
under a digest of the watcher's browser session, only to count one answer per viewer; a
snapshot carries counts, never who answered what. No Django imports.

The measured answer is one of the lab's counters (the `runscenario` JSON keys), counted from
when the question was asked: ask "how many sessions will be lost?", close the question, kill
a worker, and the class sees the measured number next to its own predictions.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_QUESTION = 200
MAX_CHOICE = 80
MIN_CHOICES, MAX_CHOICES = 2, 6
MAX_ANSWERS = 1000  # more than a lab's sockets (playground.consumers.SOCKETS_PER_LAB)
MAX_NUMBER = 1_000_000  # a prediction of a counter: no lab counts past this in its life
# Counters a question can measure, with the words the page shows for them.
FIGURES: dict[str, str] = {
    "sessions_lost": "sessions lost",
    "carts_lost": "carts lost",
    "requests_failed": "failed requests",
    "relogins": "re-logins",
    "requests_ok": "requests served",
}
KINDS = ("choice", "number")
# A number prediction "holds" within this share of the measured value (or 1, near zero).
TOLERANCE = 0.2


class PollError(ValueError):
    """A question or an answer that cannot be taken. The text is shown to whoever sent it."""


@dataclass
class Poll:
    seq: int  # which question of this lab: a new question is a new number
    question: str
    kind: str
    choices: list[str]
    figure: str  # "" when the question measures nothing
    baseline: float  # the figure's value when the question was asked
    state: str = "open"
    answers: dict[str, float] = field(default_factory=dict)

    @classmethod
    def ask(cls, *, seq: int, spec: Any, metrics: dict[str, Any]) -> Poll:
        """A new question from the owner's `ask` command ({question, kind, choices, figure})."""
        if not isinstance(spec, dict):
            raise PollError("A question needs its text and kind.")
        question = _text(spec.get("question"), "The question", MAX_QUESTION)
        kind = spec.get("kind")
        if kind not in KINDS:
            raise PollError("A question asks for a choice or a number.")
        choices: list[str] = []
        if kind == "choice":
            raw = spec.get("choices")
            lines = raw.splitlines() if isinstance(raw, str) else []
            choices = [_text(line, "A choice", MAX_CHOICE) for line in lines if line.strip()]
            if not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
                raise PollError(f"Give {MIN_CHOICES} to {MAX_CHOICES} choices, one on each line.")
        figure = spec.get("figure") or ""
        if figure and figure not in FIGURES:
            raise PollError(f"A question measures one of: {', '.join(FIGURES)}.")
        if kind == "number" and not figure:
            raise PollError("A number question needs a counter to measure its answer.")
        baseline = float(metrics.get(figure) or 0) if figure else 0.0
        return cls(
            seq=seq, question=question, kind=kind, choices=choices, figure=figure, baseline=baseline
        )

    def answer(self, viewer: str, value: Any) -> str:
        """Take one viewer's answer; return it as the page shows it. One answer each."""
        if self.state != "open":
            raise PollError("This question is closed.")
        if viewer in self.answers:
            raise PollError("You already answered this question.")
        if len(self.answers) >= MAX_ANSWERS:
            raise PollError("This question has all the answers it can take.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PollError("An answer is a number.")
        if not math.isfinite(value):
            raise PollError("An answer is a finite number.")
        if self.kind == "choice":
            if value != int(value) or not 0 <= value < len(self.choices):
                raise PollError(f"Pick one of the {len(self.choices)} choices.")
            self.answers[viewer] = int(value)
            return self.choices[int(value)]
        if not 0 <= value <= MAX_NUMBER:
            raise PollError(f"Answer with a number from 0 to {MAX_NUMBER:,}.")
        self.answers[viewer] = float(value)
        return f"{value:g}"

    def close(self) -> None:
        self.state = "closed"

    def measured(self, metrics: dict[str, Any]) -> float | None:
        if not self.figure:
            return None
        return max(0.0, float(metrics.get(self.figure) or 0) - self.baseline)

    def describe(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """What every screen shows: the question, the distribution, and once it is closed
        the measured answer (counted since the question was asked)."""
        values = list(self.answers.values())
        total = len(values)
        measured = self.measured(metrics) if self.state == "closed" else None
        described: dict[str, Any] = {
            "seq": self.seq,
            "question": self.question,
            "kind": self.kind,
            "state": self.state,
            "answered": total,
            "figure": self.figure,
            "figure_label": FIGURES.get(self.figure, ""),
            "measured": measured,
        }
        if self.kind == "choice":
            counts = Counter(int(v) for v in values)
            described["choices"] = [
                {"text": text, "count": counts[i], "percent": _percent(counts[i], total)}
                for i, text in enumerate(self.choices)
            ]
            return described
        predicted = Counter(values)
        described["numbers"] = [
            {"value": value, "count": count, "percent": _percent(count, total)}
            for value, count in sorted(predicted.most_common(8))
        ]
        described["median"] = statistics.median(values) if values else None
        if measured is not None:
            described["within"] = sum(1 for v in values if close_enough(v, measured))
        return described


def close_enough(predicted: float, measured: float) -> bool:
    return abs(predicted - measured) <= max(1.0, TOLERANCE * measured)


def _percent(count: int, total: int) -> int:
    return round(100 * count / total) if total else 0


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PollError(f"{what} cannot be empty.")
    text = " ".join(value.split())
    if len(text) > limit:
        raise PollError(f"{what} has at most {limit} characters.")
    return text
