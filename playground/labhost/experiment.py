"""A lesson's experiment running in a hosted lab: its steps at their times, then the
measured figures, the check and the verdict on the learner's prediction, shown on the lab
page (the snapshot's `experiment`). The web tier sends the experiment as plain data with
lab.create; it is validated here like any message. No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from playground.lab import Lab, LabConfig, LabError
from playground.lab.figures import FIGURE_RE, Condition, condition_parse, figure_value
from playground.lab.scenario import (
    Action,
    ScenarioError,
    action_parse,
    actions_check,
    scenario_report,
    scenario_steps,
)

log = logging.getLogger("playground.labhost")
MAX_TEXT = 600
MAX_STEPS = 12
MAX_SHOW = 12


class ExperimentInvalid(ValueError):
    """An experiment message that cannot run; the text says why."""


@dataclass
class ExperimentRun:
    slug: str
    title: str
    claim: str
    explain: str
    lesson_url: str
    steps: list[Action]
    seconds: float
    show: list[str]
    check: Condition
    variant: str = ""  # one lab of a side-by-side run: the name of its variant
    predicted: str = ""  # what the learner predicted, as the card put it ("" if nothing)
    judge: Condition | None = None  # the chosen choice's condition...
    guess: tuple[float, str, float] | None = None  # ...or (value, figure, tolerance)
    state: str = "starting"  # starting, running, done, failed
    steps_done: int = 0
    outcome: list[tuple[str, float | None]] = field(default_factory=list)
    held: bool | None = None
    measured: float | None = None  # a number prediction's figure, as the run measured it
    check_held: bool | None = None
    error: str = ""
    task: asyncio.Task[None] | None = None
    learner: frozenset[int] = frozenset()  # steps the learner does with a button
    waiting: int | None = None  # the learner's step the run waits for now
    pressed: asyncio.Event = field(default_factory=asyncio.Event)

    def press(self) -> bool:
        """The learner's button: do the step the run waits for. False if none waits."""
        if self.waiting is None:
            return False
        self.pressed.set()
        return True

    def describe(self) -> dict[str, Any]:
        """What the lab page shows (the snapshot's `experiment`)."""
        return {
            "slug": self.slug,
            "variant": self.variant,
            "title": self.title,
            "claim": self.claim,
            "explain": self.explain,
            "lesson_url": self.lesson_url,
            "seconds": self.seconds,
            "steps": [
                {
                    "text": str(a),
                    "action": str(a).partition(":")[2],  # without its time
                    "at": a.at,
                    "done": i < self.steps_done,
                    "learner": i in self.learner,
                    "waiting": i == self.waiting,
                }
                for i, a in enumerate(self.steps)
            ],
            "state": self.state,
            "waiting": self.waiting is not None,
            "predicted": self.predicted,
            "outcome": [{"figure": f, "value": v} for f, v in self.outcome],
            "held": self.held,
            "measured": self.measured,
            "check_held": self.check_held,
            "error": self.error,
        }

    async def run(self, lab: Lab, on_change: Any) -> None:
        """The steps on the running lab, then the figures. Never raises (but cancels)."""
        self.state = "running"
        on_change()

        def stepped(index: int) -> None:
            self.steps_done = index + 1
            on_change()

        async def hold(index: int) -> None:
            if index not in self.learner:
                return
            self.pressed.clear()
            self.waiting = index
            on_change()
            try:
                await self.pressed.wait()
            finally:
                self.waiting = None

        try:
            ran = await scenario_steps(lab, self.steps, self.seconds, on_step=stepped, hold=hold)
            lab.metrics.tick()
            report = scenario_report(
                lab, lab.config, ran, lab.snapshot(), lab.spawn_times, closed=False
            )
        except LabError as exc:
            self.state, self.error = "failed", str(exc)
            on_change()
            return
        self.outcome = [(f, _maybe(f, report)) for f in self.show]
        if self.guess is not None:
            self.measured = _maybe(self.guess[1], report)
        with contextlib.suppress(KeyError):
            self.check_held = self.check.holds(report)
        with contextlib.suppress(KeyError):
            if self.judge is not None:
                self.held = self.judge.holds(report)
            elif self.guess is not None:
                value, figure, tolerance = self.guess
                self.held = abs(value - figure_value(figure, report)) <= tolerance
        self.state = "done"
        on_change()


def _maybe(figure: str, report: dict[str, Any]) -> float | None:
    try:
        return figure_value(figure, report)
    except KeyError:
        return None


def experiment_from_message(raw: Any, config: LabConfig) -> ExperimentRun:
    """Validate lab.create's `experiment` against the lab it will run on."""
    if not isinstance(raw, dict):
        raise ExperimentInvalid("experiment must be an object")
    texts = {}
    for key in ("slug", "title", "claim", "explain", "lesson_url", "check"):
        value = raw.get(key)
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
            raise ExperimentInvalid(f"experiment {key} must be text")
        texts[key] = value
    if not texts["lesson_url"].startswith("/"):
        raise ExperimentInvalid("experiment lesson_url must be a path on this site")
    steps, seconds, show = raw.get("steps"), raw.get("seconds"), raw.get("show")
    if not isinstance(steps, list) or len(steps) > MAX_STEPS:
        raise ExperimentInvalid(f"experiment steps: a list of at most {MAX_STEPS}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ExperimentInvalid("experiment seconds must be a number")
    if (
        not isinstance(show, list)
        or len(show) > MAX_SHOW
        or not all(isinstance(f, str) and FIGURE_RE.match(f) for f in show)
    ):
        raise ExperimentInvalid("experiment show: a list of figures")
    try:
        actions = [action_parse(str(step)) for step in steps]
        actions = actions_check(config, float(seconds), actions)
        check = condition_parse(texts["check"])
    except (ScenarioError, LabError, ValueError) as exc:
        raise ExperimentInvalid(f"experiment: {exc}") from exc
    variant = raw.get("variant") or ""
    if not isinstance(variant, str) or len(variant) > 40:
        raise ExperimentInvalid("experiment variant must be a short name")
    learner = raw.get("learner") or []
    if not isinstance(learner, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(steps) for i in learner
    ):
        raise ExperimentInvalid("experiment learner: the indexes of some of its steps")
    run = ExperimentRun(
        slug=texts["slug"],
        variant=variant,
        learner=frozenset(learner),
        title=texts["title"],
        claim=texts["claim"],
        explain=texts["explain"],
        lesson_url=texts["lesson_url"],
        steps=actions,
        seconds=float(seconds),
        show=list(show),
        check=check,
    )
    prediction = raw.get("prediction")
    if prediction is None:
        return run
    if not isinstance(prediction, dict) or not isinstance(prediction.get("text"), str):
        raise ExperimentInvalid("experiment prediction must be an object with its text")
    run.predicted = prediction["text"][:MAX_TEXT]
    try:
        if "when" in prediction:
            run.judge = condition_parse(str(prediction["when"]))
        else:
            value, figure, tolerance = (
                prediction.get("value"),
                prediction.get("figure"),
                prediction.get("tolerance"),
            )
            numbers = (value, tolerance)
            if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
                raise ValueError("a number prediction needs value and tolerance")
            if not isinstance(figure, str) or not FIGURE_RE.match(figure):
                raise ValueError("a number prediction needs the figure it guesses")
            run.guess = (float(value), figure, float(tolerance))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ExperimentInvalid(f"experiment prediction: {exc}") from exc
    return run
