"""Experiments inside lessons: parse and validate ```experiment blocks, and judge a run.

An experiment is a claim of the lesson, a lab preset in the engine's own setting names, the
steps in runscenario's `--at` action names, a prediction the learner makes first, and a
check over the run's measured figures (runscenario's JSON keys). The engine's vocabulary
is the engine's (playground.lab.scenario), so a block that names an action or a setting
the engine does not have is a content error with its file line, never a lab that fails.
No Django here.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from course.quiz import QUIZ_ID_RE as SLUG_RE
from course.quiz import QuizProblem as ExperimentProblem
from course.yaml_marks import YamlProblem, yaml_key_nodes, yaml_load_marked
from playground.lab.config import LabConfig
from playground.lab.errors import LabError
from playground.lab.figures import FIGURE_RE as _FIGURE_RE
from playground.lab.figures import Condition, condition_parse, figure_value
from playground.lab.scenario import Action, ScenarioError, action_parse, actions_check

KEYS = ("slug", "title", "claim", "lab", "compare", "seconds", "steps", "predict", "check",
        "show", "explain")  # fmt: skip
REQUIRED = ("slug", "title", "claim", "lab", "seconds", "steps", "predict", "check", "explain")
MAX_SECONDS = 30.0  # a learner waits for it; CI runs every one


class ExperimentError(ValueError):
    def __init__(self, problems: Sequence[ExperimentProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Choice:
    number: int
    text: str
    when: Condition
    text_html: str = ""


@dataclass(frozen=True)
class Prediction:
    question: str
    choices: tuple[Choice, ...] = ()  # a choice prediction...
    figure: str = ""  # ...or a number: the figure it guesses, and how close counts
    tolerance: float = 0.0
    question_html: str = ""

    def message(self, answer: str | None) -> dict[str, Any] | None:
        """The learner's answer as lab.create carries it, or None (no valid answer)."""
        try:
            number = float(answer or "")
        except ValueError:
            return None
        if number != number or abs(number) > 1e9:  # NaN, or absurd
            return None
        if self.choices:
            chosen = next((c for c in self.choices if c.number == number), None)
            return None if chosen is None else {"text": chosen.text, "when": chosen.when.text}
        return {
            "text": f"{number:g}",
            "value": number,
            "figure": self.figure,
            "tolerance": self.tolerance,
        }

    @property
    def figures(self) -> list[str]:
        """The figures judging it reads."""
        if self.choices:
            return [f for c in self.choices for f in c.when.figures]
        return [self.figure]

    def verdict(self, *, answer: int | float, figures: Mapping[str, Any]) -> bool:
        """Whether the learner's prediction held on the run ("held" or "missed")."""
        if self.choices:
            chosen = next((c for c in self.choices if c.number == answer), None)
            return chosen is not None and chosen.when.holds(figures)
        return abs(float(answer) - figure_value(self.figure, figures)) <= self.tolerance


@dataclass(frozen=True)
class Experiment:
    slug: str
    title: str
    claim: str
    lab: Mapping[str, Any]  # the preset, in LabConfig's names
    compare: Mapping[str, Mapping[str, Any]]  # variant name -> changes to the preset
    seconds: float
    steps: tuple[Action, ...]
    # Steps the learner does with a button on the lab page (by index), when they are due;
    # the run's clock waits for them. Headless runs (the tests) do them at their time.
    learner_steps: tuple[int, ...]
    predict: Prediction
    check: Condition
    show: tuple[str, ...]
    explain: str
    claim_html: str = ""
    explain_html: str = ""

    @property
    def form_fields(self) -> list[tuple[str, str]]:
        """The start form's fields for the preset (its first variant side by side)."""
        settings = next(iter(self.configs().values()))
        fields = []
        for name, value in settings.items():
            if isinstance(value, bool):
                if value:
                    fields.append((name, "on"))
            else:
                fields.append((name, str(value)))
        if "sticky" not in settings and settings.get("mode", "stateful") == "stateful":
            fields.append(("sticky", "on"))  # the engine's default for a stateful lab
        return fields

    @property
    def preset_lines(self) -> list[tuple[str, str]]:
        """The preset as the card lists it: setting, value (side by side: each variant)."""
        lines = [(k.replace("_", " "), _shown(v)) for k, v in self.lab.items()]
        for name, changes in self.compare.items():
            lines.append(
                (name, ", ".join(f"{k.replace('_', ' ')} {_shown(v)}" for k, v in changes.items()))
            )
        return lines

    def run_message(
        self, *, answer: str | None, lesson_url: str, variant: str = ""
    ) -> dict[str, Any]:
        """What lab.create carries to run it (playground.labhost.experiment), with the
        learner's prediction (a choice number or a number, as the card's form sent it;
        anything else counts as no prediction). Side by side, one message per variant's
        lab: it measures the figures the check and the prediction read of that variant
        (unprefixed), and the pair's page judges them together (`verdict`)."""
        message = {
            "slug": self.slug,
            "title": self.title,
            "claim": self.claim,
            "explain": self.explain,
            "lesson_url": f"{lesson_url}#experiment-{self.slug}",
            "steps": [str(a) for a in self.steps],
            "learner": list(self.learner_steps),
            "seconds": self.seconds,
            "show": list(self.show),
            "check": self.check.text,
            "prediction": self.predict.message(answer),
        }
        if variant:
            message.update(variant=variant, show=self.variant_figures(variant), prediction=None)
        return message

    def variant_figures(self, variant: str) -> list[str]:
        """The figures of one variant's run that the card, the check and the prediction
        read (`none.sessions_lost` is the variant `none`'s `sessions_lost`)."""
        read = [*self.show, *self.check.figures, *self.predict.figures]
        prefix = f"{variant}."
        return list(dict.fromkeys(f.removeprefix(prefix) for f in read if f.startswith(prefix)))

    def verdict(
        self, *, measured: Mapping[str, Mapping[str, float | None]], answer: str | None
    ) -> PairVerdict:
        """The measured answer of a side-by-side run from each variant's measured figures
        (`variant_figures`, by variant name): the figures to show, whether the check held,
        and whether the learner's prediction did (None: no prediction)."""
        figures = figures_of({name: _nested(flat) for name, flat in measured.items()})
        outcome: list[tuple[str, float | None]] = []
        for figure in self.show:
            try:
                outcome.append((figure, figure_value(figure, figures)))
            except KeyError:
                outcome.append((figure, None))
        try:
            check_held: bool | None = self.check.holds(figures)
        except KeyError:
            check_held = None
        held = None
        predicted = self.predict.message(answer)
        if predicted is not None:
            try:
                held = self.predict.verdict(answer=float(answer or ""), figures=figures)
            except KeyError:
                held = None
        return PairVerdict(
            outcome=outcome,
            check_held=check_held,
            predicted=predicted["text"] if predicted else "",
            held=held,
        )

    def configs(self) -> dict[str, dict[str, Any]]:
        """Each lab to run: one ("" names it), or the variants side by side."""
        if not self.compare:
            return {"": dict(self.lab)}
        return {name: {**self.lab, **changes} for name, changes in self.compare.items()}


@dataclass(frozen=True)
class PairVerdict:
    outcome: list[tuple[str, float | None]]
    check_held: bool | None
    predicted: str  # what the learner predicted, as the card put it ("" if nothing)
    held: bool | None  # None: no prediction, or a figure missing


@dataclass(frozen=True)
class ExperimentSlot:
    """One ```experiment fence, in page order: its experiment, or why it cannot be shown."""

    line: int
    experiment: Experiment | None
    problems: tuple[ExperimentProblem, ...] = ()


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _nested(flat: Mapping[str, float | None]) -> dict[str, Any]:
    """{"kills.0.at": 3} as the report it came from: {"kills": {"0": {"at": 3}}}."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        if value is None:
            continue
        *parents, last = path.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def figures_of(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The figures a check reads: a single run's report as it is; variants by name."""
    if set(reports) == {""}:
        return dict(reports[""])
    return dict(reports)


def experiment_slots(
    *, blocks: Iterable[tuple[str, int]], inline: Callable[[str], str] = html.escape
) -> tuple[ExperimentSlot, ...]:
    """A lesson's blocks (source, fence line), each parsed and validated."""
    slots = []
    for source, line in blocks:
        try:
            slots.append(
                ExperimentSlot(line, experiment_parse(source=source, line=line, inline=inline))
            )
        except ExperimentError as exc:
            slots.append(ExperimentSlot(line, None, tuple(exc.problems)))
    return tuple(slots)


def experiment_parse(
    *, source: str, line: int, inline: Callable[[str], str] = html.escape
) -> Experiment:
    """One ```experiment block; ExperimentError lists every problem with its file line."""
    problems: list[ExperimentProblem] = []

    def problem(message: str, at: int = line) -> None:
        problems.append(ExperimentProblem(at, f"experiment: {message}"))

    try:
        root, data = yaml_load_marked(source)
    except YamlProblem as exc:
        raise ExperimentError(
            [ExperimentProblem(line + 1 + exc.line, f"experiment: invalid YAML: {exc.problem}")]
        ) from exc
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise ExperimentError([ExperimentProblem(line, "experiment: expected 'key: value' lines")])
    key_lines = {
        k.value: line + 1 + k.start_mark.line
        for k, _ in yaml_key_nodes(root)
        if isinstance(k, yaml.ScalarNode)
    }
    for key, key_line in key_lines.items():
        if key not in KEYS:
            problem(f"unknown key {key!r} (allowed: {', '.join(KEYS)})", key_line)
    for key in REQUIRED:
        if key not in data:
            problem(f"missing {key!r}")

    def line_of(key: str) -> int:
        return key_lines.get(key, line)

    slug = data.get("slug")
    if "slug" in data and not (isinstance(slug, str) and SLUG_RE.match(slug)):
        problem(f"slug {slug!r} must be lowercase letters, digits and hyphens", line_of("slug"))
    for key in ("title", "claim", "explain"):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            problem(f"{key!r} must be non-empty text", line_of(key))
    seconds = data.get("seconds")
    if "seconds" in data and (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_SECONDS
    ):
        problem(f"'seconds' must be a number from 1 to {MAX_SECONDS:g}", line_of("seconds"))
        seconds = None

    lab = data.get("lab")
    compare = data.get("compare") or {}
    if "lab" in data and not isinstance(lab, dict):
        problem("'lab' must be settings such as 'mode: stateful'", line_of("lab"))
        lab = None
    if not isinstance(compare, dict) or not all(
        isinstance(k, str) and SLUG_RE.match(k) and isinstance(v, dict) for k, v in compare.items()
    ):
        problem(
            "'compare' must name variants, each with the settings it changes", line_of("compare")
        )
        compare = {}
    if compare and len(compare) != 2:
        # A learner runs two labs at most (playground.labhost.limits.max_per_owner).
        problem("'compare' names exactly two variants, one lab each", line_of("compare"))
        compare = {}
    steps: list[Action] = []
    learner_steps: list[int] = []
    raw_steps = data.get("steps")
    if "steps" in data:
        if not isinstance(raw_steps, list):
            problem(
                "'steps' must be a list of 'at: SECONDS' and 'do: ACTION' items", line_of("steps")
            )
        else:
            for step in raw_steps:
                if not (
                    isinstance(step, dict)
                    and {"at", "do"} <= set(step) <= {"at", "do", "learner"}
                    and isinstance(step.get("learner", False), bool)
                ):
                    problem(
                        "each step is 'at: SECONDS' and 'do: ACTION' (and 'learner: true' "
                        "for a step the learner does with a button)",
                        line_of("steps"),
                    )
                    continue
                try:
                    steps.append(action_parse(f"{step['at']}:{step['do']}"))
                except ScenarioError as exc:
                    problem(str(exc).replace("--at ", "step "), line_of("steps"))
                    continue
                if step.get("learner"):
                    learner_steps.append(len(steps) - 1)
    if isinstance(lab, dict) and seconds is not None:
        variants = [dict(lab)] if not compare else [{**lab, **c} for c in compare.values()]
        for settings in variants:
            try:
                config = LabConfig(lab_id="check", **settings)
                actions_check(config, float(seconds), list(steps))
            except TypeError as exc:
                problem(f"lab: {exc}".replace("LabConfig.__init__() ", ""), line_of("lab"))
            except (LabError, ScenarioError) as exc:
                problem(f"lab: {exc}", line_of("lab"))

    check: Condition | None = None
    if "check" in data:
        try:
            check = condition_parse(data["check"])
        except ValueError as exc:
            problem(f"check: {exc}", line_of("check"))
    prediction = _prediction(data.get("predict"), problem, line_of("predict"), inline)
    show = data.get("show") or []
    if not isinstance(show, list) or not all(
        isinstance(s, str) and _FIGURE_RE.match(s) for s in show
    ):
        problem("'show' must be a list of figures such as sessions_lost", line_of("show"))
        show = []
    if problems:
        raise ExperimentError(sorted(problems, key=lambda p: p.line))
    assert check is not None and prediction is not None
    return Experiment(
        slug=str(slug),
        title=str(data["title"]),
        claim=str(data["claim"]),
        lab=dict(lab or {}),
        compare={k: dict(v) for k, v in compare.items()},
        seconds=float(seconds or 0),
        steps=tuple(steps),
        learner_steps=tuple(learner_steps),
        predict=prediction,
        check=check,
        show=tuple(show),
        explain=str(data["explain"]),
        claim_html=inline(str(data["claim"])),
        explain_html=inline(str(data["explain"])),
    )


def _prediction(
    raw: Any, problem: Callable[[str, int], None], at: int, inline: Callable[[str], str]
) -> Prediction | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("question"), str):
        problem("'predict' needs a 'question' and 'choices' (or 'figure' and 'tolerance')", at)
        return None
    question = raw["question"]
    if "choices" in raw:
        choices = []
        items = raw["choices"]
        if not isinstance(items, list) or not 2 <= len(items) <= 5:
            problem("predict: 2 to 5 choices, each 'text' and 'when'", at)
            return None
        for number, item in enumerate(items, start=1):
            if not (
                isinstance(item, dict) and isinstance(item.get("text"), str) and "when" in item
            ):
                problem(f"predict: choice {number} needs 'text' and 'when'", at)
                continue
            try:
                when = condition_parse(item["when"])
            except ValueError as exc:
                problem(f"predict: choice {number}: {exc}", at)
                continue
            choices.append(Choice(number, item["text"], when, inline(item["text"])))
        return Prediction(question, tuple(choices), question_html=inline(question))
    figure, tolerance = raw.get("figure"), raw.get("tolerance", 0)
    if not (isinstance(figure, str) and _FIGURE_RE.match(figure)):
        problem("a prediction without choices needs the 'figure' it guesses", at)
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        problem("predict: 'tolerance' must be a number, 0 or more", at)
        return None
    return Prediction(
        question, figure=figure, tolerance=float(tolerance), question_html=inline(question)
    )
