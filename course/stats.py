"""The instructors' dashboard figures (/instructor/): per quiz question and experiment
prediction of the course as it is now, and per lesson, how many read it to its end.

Plain functions over plain rows: `dashboard_load` reads the records (course.records) and
hands them to the others, which touch neither the database nor the request.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard, TypeVar

from django.db.models import Count, Q

from course.experiment import Experiment, Prediction
from course.lessons import Lesson
from course.models import ExperimentRecord, LessonReading, QuizAnswer
from course.quiz import Quiz

Item = TypeVar("Item", bound=Hashable)  # whatever names an item: the caller's choice
# Below this many answering sessions an item's discrimination is noise: hidden.
MIN_FOR_DISCRIMINATION = 20


class Attempt(NamedTuple):
    """One answer of one session to one item, in the order they were given."""

    session: str
    correct: bool
    picked: tuple[int, ...] = ()  # the choice numbers ticked (a number prediction: none)
    value: float | None = None  # a number prediction's guess
    measured: float | None = None  # ...and the figure the run measured


@dataclass(frozen=True)
class ItemStats:
    """One quiz question or experiment prediction, as the dashboard shows it."""

    kind: str  # "quiz" or "prediction"
    key: str  # "lesson/quiz-id" or the experiment's slug
    lesson_title: str
    question: str  # as written (shown escaped when there is no HTML)
    question_html: str  # sanitized inline HTML, from the course snapshot
    answered: int  # sessions that answered (first attempts)
    right: int  # ...whose first attempt was right (a prediction: it held)
    wrong_pick: str = ""  # the wrong choice first attempts picked most, and how often
    wrong_pick_count: int = 0
    discrimination: float | None = None
    median_predicted: float | None = None  # number predictions only
    median_measured: float | None = None
    number: bool = False  # a number prediction (share within tolerance)

    @property
    def percent_right(self) -> int | None:
        return round(100 * self.right / self.answered) if self.answered else None

    @property
    def needs_more(self) -> bool:
        return self.answered < MIN_FOR_DISCRIMINATION


@dataclass(frozen=True)
class ReadingStats:
    slug: str
    title: str
    opened: int
    read: int

    @property
    def percent_read(self) -> int | None:
        return round(100 * self.read / self.opened) if self.opened else None


@dataclass(frozen=True)
class Dashboard:
    reading: list[ReadingStats]
    quizzes: list[ItemStats]
    predictions: list[ItemStats]


def first_attempts(attempts: Iterable[Attempt]) -> dict[str, Attempt]:
    """Each session's first attempt (attempts in the order given): later ones come after
    the feedback, so they measure reading the feedback, not knowing the answer."""
    firsts: dict[str, Attempt] = {}
    for attempt in attempts:
        firsts.setdefault(attempt.session, attempt)
    return firsts


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's correlation; None when either side does not vary (or fewer than 2)."""
    if len(xs) != len(ys) or len(xs) < 2:
        return None
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mean_x) ** 2 for x in xs)
    syy = sum((y - mean_y) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def discrimination(
    firsts: Mapping[Item, Mapping[str, bool]], *, minimum: int = MIN_FOR_DISCRIMINATION
) -> dict[Item, float | None]:
    """Item-rest correlation of each item (its first attempts right or wrong, by session),
    over sessions: with the share right of that session's first attempts at the other
    items. A point-biserial correlation: near 1, the learners who do well elsewhere get
    this one right; near 0 or below, it does not tell them apart (a trick or a flawed
    question). None for an item with fewer than `minimum` sessions, or with no spread."""
    by_session: dict[str, dict[Item, bool]] = defaultdict(dict)
    for item, answers in firsts.items():
        for session, right in answers.items():
            by_session[session][item] = right
    figures: dict[Item, float | None] = {}
    for item, answers in firsts.items():
        if len(answers) < minimum:
            figures[item] = None
            continue
        xs, ys = [], []
        for session, right in answers.items():
            others = [r for other, r in by_session[session].items() if other != item]
            if others:  # a session that answered this item alone says nothing about it
                xs.append(float(right))
                ys.append(sum(others) / len(others))
        figures[item] = pearson(xs, ys)
    return figures


def most_picked(picks: Iterable[int], *, among: Mapping[int, str]) -> tuple[str, int]:
    """The text of the choice picked most (of `among`: number -> text) and how often; the
    lower number on a tie; ("", 0) if none was."""
    counts = Counter(number for number in picks if number in among)
    if not counts:
        return "", 0
    number, count = min(counts.items(), key=lambda item: (-item[1], item[0]))
    return among[number], count


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def item_stats(
    *,
    key: str,
    lesson: Lesson,
    asked: Quiz | Prediction,
    firsts: Mapping[str, Attempt],
    discrimination: float | None,
) -> ItemStats:
    """A quiz question or prediction. Its wrong pick is the choice picked most by wrong
    first attempts: of a quiz, a wrong choice (a wrong answer may tick right ones too);
    of a prediction, the choice that did not hold."""
    if isinstance(asked, Quiz):
        kind, among = "quiz", {c.number: c.text for c in asked.choices if not c.correct}
    else:
        kind, among = "prediction", {c.number: c.text for c in asked.choices}
    missed = (n for a in firsts.values() if not a.correct for n in a.picked)
    text, count = most_picked(missed, among=among)
    number = not among and kind == "prediction"
    return ItemStats(
        kind=kind,
        key=key,
        lesson_title=lesson.title,
        question=asked.question,
        question_html=asked.question_html,
        answered=len(firsts),
        right=sum(a.correct for a in firsts.values()),
        wrong_pick=text,
        wrong_pick_count=count,
        discrimination=discrimination,
        median_predicted=_median(a.value for a in firsts.values()) if number else None,
        median_measured=_median(a.measured for a in firsts.values()) if number else None,
        number=number,
    )


class RunRecord(NamedTuple):
    """A finished experiment run, as course.models.ExperimentRecord keeps it."""

    session: str
    prediction: str  # as the card's form sent it
    held: bool | None
    figures: Any


def prediction_attempt(*, experiment: Experiment, run: RunRecord) -> Attempt | None:
    """A finished run as an attempt at its prediction; None without a valid prediction, or
    when the run could not judge it."""
    predict = experiment.predict
    if run.held is None or predict.message(run.prediction) is None:
        return None
    guess = float(run.prediction)
    if predict.choices:
        return Attempt(run.session, run.held, picked=(int(guess),))
    figures = run.figures if isinstance(run.figures, dict) else {}
    # The host's own reading of the guessed figure; else the card's, if it shows that one.
    measured = next(
        (float(v) for v in (figures.get("measured"), figures.get(predict.figure)) if _is_number(v)),
        None,
    )
    return Attempt(run.session, run.held, value=guess, measured=measured)


def items_build(
    *,
    lessons: Sequence[Lesson],
    quiz_attempts: Mapping[tuple[str, str], Sequence[Attempt]],
    runs: Mapping[str, Sequence[RunRecord]],
    minimum: int = MIN_FOR_DISCRIMINATION,
) -> tuple[list[ItemStats], list[ItemStats]]:
    """Every quiz question and prediction of `lessons` in course order, answered or not:
    (quizzes, predictions). quiz_attempts: by (lesson slug, quiz id), in time order; runs:
    each experiment's finished runs, by slug, in time order. Discrimination is over all
    of them: a session's score is its first attempts at quizzes and predictions alike."""
    asked: list[tuple[str, Lesson, Quiz | Prediction, dict[str, Attempt]]] = []
    for lesson in lessons:
        for slot in lesson.quizzes:
            if (quiz := slot.quiz) is not None:
                attempts = quiz_attempts.get((lesson.slug, quiz.id), ())
                asked.append((f"{lesson.slug}/{quiz.id}", lesson, quiz, first_attempts(attempts)))
        for exp_slot in lesson.rendered.experiments:
            if (experiment := exp_slot.experiment) is not None:
                made = (
                    prediction_attempt(experiment=experiment, run=run)
                    for run in runs.get(experiment.slug, ())
                )
                firsts = first_attempts(a for a in made if a)
                asked.append((experiment.slug, lesson, experiment.predict, firsts))
    figures = discrimination(
        {i: {s: a.correct for s, a in firsts.items()} for i, (*_, firsts) in enumerate(asked)},
        minimum=minimum,
    )
    items = [
        item_stats(key=key, lesson=lesson, asked=one, firsts=firsts, discrimination=figures[i])
        for i, (key, lesson, one, firsts) in enumerate(asked)
    ]
    return [i for i in items if i.kind == "quiz"], [i for i in items if i.kind == "prediction"]


def reading_build(
    *, lessons: Sequence[Lesson], counts: Mapping[str, tuple[int, int]]
) -> list[ReadingStats]:
    """Each lesson in course order: sessions that opened it, and that read it to its end."""
    return [
        ReadingStats(lesson.slug, lesson.title, *counts.get(lesson.slug, (0, 0)))
        for lesson in lessons
    ]


def dashboard_load(*, lessons: Sequence[Lesson]) -> Dashboard:
    """The dashboard over every record kept (a course's worth: read in one pass each)."""
    quiz_attempts: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    answers = QuizAnswer.objects.order_by("answered_at", "id").values_list(
        "lesson_slug", "quiz_id", "session_hash", "correct", "choices"
    )
    for slug, quiz_id, session, correct, choices in answers.iterator():
        picked = (
            tuple(n for n in choices if isinstance(n, int)) if isinstance(choices, list) else ()
        )
        quiz_attempts[(slug, quiz_id)].append(Attempt(session, correct, picked=picked))
    runs: dict[str, list[RunRecord]] = defaultdict(list)
    records = (
        ExperimentRecord.objects.filter(finished_at__isnull=False)
        .order_by("started_at", "id")
        .values_list("experiment_slug", "session_hash", "prediction", "held", "figures")
    )
    for slug, session, prediction, held, figures in records.iterator():
        runs[slug].append(RunRecord(session, prediction, held, figures))
    counts = {
        row["lesson_slug"]: (row["opened"], row["read"])
        for row in LessonReading.objects.order_by()
        .values("lesson_slug")
        .annotate(opened=Count("id"), read=Count("id", filter=Q(read_at__isnull=False)))
    }
    quizzes, predictions = items_build(lessons=lessons, quiz_attempts=quiz_attempts, runs=runs)
    return Dashboard(
        reading=reading_build(lessons=lessons, counts=counts),
        quizzes=quizzes,
        predictions=predictions,
    )
