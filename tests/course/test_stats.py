"""The dashboard's figures (course.stats): first attempts, the item-rest correlation, the
wrong choice picked most, and every question and prediction of a lesson, answered or not."""

from __future__ import annotations

import pytest

from course.lessons import Lesson
from course.models import ExperimentRecord, LessonReading, QuizAnswer
from course.snapshot import course_snapshot
from course.stats import (
    MIN_FOR_DISCRIMINATION,
    Attempt,
    RunRecord,
    dashboard_load,
    discrimination,
    first_attempts,
    items_build,
    most_picked,
    pearson,
)

from .conftest import LessonWriter, lesson_text
from .test_experiment import GOOD

QUIZ = """\
```quiz
id: where-cart
question: "Where does the cart live?"
choices:
  - text: "In the **worker**"
    correct: false
    feedback: "No."
  - text: "In the store"
    correct: true
    feedback: "Yes."
  - text: "In the balancer"
    correct: false
    feedback: "No."
```
"""
UNANSWERED = QUIZ.replace("where-cart", "never-asked").replace("Where does", "When does")
CHOICE = "```experiment\n" + GOOD.replace("kill-one", "kill-choice") + "```\n"
PREDICT_CHOICES = GOOD[GOOD.index("  choices:") : GOOD.index("check:")]
NUMBER = (
    "```experiment\n"
    + GOOD.replace("kill-one", "kill-number").replace(
        PREDICT_CHOICES, "  figure: sessions_lost\n  tolerance: 2\n"
    )
    + "```\n"
)


@pytest.fixture
def lesson(write_lesson: LessonWriter) -> Lesson:
    body = "\n\n".join(
        [
            "## Start\n",
            QUIZ,
            UNANSWERED,
            CHOICE,
            NUMBER,
        ]
    )
    write_lesson("carts", lesson_text(title="Carts", body=body))
    snapshot = course_snapshot()
    assert not snapshot.errors
    return snapshot.lesson_get(slug="carts")


def test_only_each_sessions_first_attempt_counts() -> None:
    firsts = first_attempts(
        [Attempt("a", False, (1,)), Attempt("b", True, (2,)), Attempt("a", True, (2,))]
    )
    assert firsts == {"a": Attempt("a", False, (1,)), "b": Attempt("b", True, (2,))}


def test_pearson_is_the_correlation_and_none_without_spread() -> None:
    assert pearson([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0]) == pytest.approx(1.0)
    assert pearson([0, 1, 0, 1], [1.0, 0.0, 1.0, 0.0]) == pytest.approx(-1.0)
    # Point-biserial by hand: (M1 - M0) / sd(y) * sqrt(p q) = (0.75 - 0.25) / 0.35355 * 0.5.
    assert pearson([1, 1, 0, 0], [1.0, 0.5, 0.5, 0.0]) == pytest.approx(0.7071, abs=1e-4)
    assert pearson([1, 1, 1], [0.0, 0.5, 1.0]) is None  # everyone right: no spread
    assert pearson([1], [1.0]) is None


def test_discrimination_tells_items_that_separate_learners_from_those_that_do_not() -> None:
    sessions = [f"s{i}" for i in range(MIN_FOR_DISCRIMINATION)]
    strong = {s: i % 2 == 0 for i, s in enumerate(sessions)}  # half the class knows it all
    firsts = {
        "basics": strong,
        "more": dict(strong),
        "trick": {s: not right for s, right in strong.items()},  # the strong ones fall for it
        "few": {s: strong[s] for s in sessions[: MIN_FOR_DISCRIMINATION - 1]},
    }
    figures = discrimination(firsts)
    assert figures["basics"] is not None and figures["basics"] > 0.8
    assert figures["trick"] is not None and figures["trick"] < -0.8
    assert figures["few"] is None  # 19 sessions: hidden
    assert discrimination({"alone": strong})["alone"] is None  # no other item to compare


def test_the_wrong_choice_picked_most_breaks_ties_by_its_number() -> None:
    wrong = {1: "worker", 3: "balancer"}
    assert most_picked([3, 1, 2, 2, 3, 1], among=wrong) == ("worker", 2)
    assert most_picked([3, 2, 3], among=wrong) == ("balancer", 2)
    assert most_picked([2], among=wrong) == ("", 0)


def test_every_question_and_prediction_shows_answered_or_not(lesson: Lesson) -> None:
    quiz_attempts = {
        ("carts", "where-cart"): [
            Attempt("a", False, (1,)),
            Attempt("b", False, (3,)),
            Attempt("c", False, (1,)),
            Attempt("d", True, (2,)),
            Attempt("a", True, (2,)),  # a second try, after the feedback: not counted
        ]
    }
    runs = {
        "kill-choice": [
            RunRecord("a", "2", False, {"sessions_lost": 4.0}),  # "Kept", missed
            RunRecord("b", "1", True, {"sessions_lost": 3.0}),
            RunRecord("c", "", None, {"sessions_lost": 3.0}),  # no prediction: not counted
            RunRecord("d", "9", False, {"sessions_lost": 3.0}),  # no such choice
        ],
        "kill-number": [
            RunRecord("a", "4", True, {"sessions_lost": 5.0, "measured": 5.0}),
            RunRecord("b", "0", False, {"sessions_lost": 3.0, "measured": 3.0}),
            RunRecord("c", "10", False, {"sessions_lost": 1.0, "measured": None}),
            RunRecord("d", "2", True, {"measured": None}),  # the figure is not in the record
        ],
    }
    quizzes, predictions = items_build(lessons=[lesson], quiz_attempts=quiz_attempts, runs=runs)
    asked, never = quizzes
    assert asked.key == "carts/where-cart" and asked.lesson_title == "Carts"
    assert "Where does the cart live?" in asked.question_html
    assert (asked.answered, asked.right, asked.percent_right) == (4, 1, 25)
    assert (asked.wrong_pick, asked.wrong_pick_count) == ("In the **worker**", 2)
    assert asked.needs_more and asked.discrimination is None
    assert (never.key, never.answered, never.percent_right, never.wrong_pick) == (
        "carts/never-asked",
        0,
        None,
        "",
    )
    choice, number = predictions
    assert choice.key == "kill-choice" and choice.question_html == "What?"
    assert (choice.answered, choice.right, choice.wrong_pick, choice.wrong_pick_count) == (
        2,
        1,
        "Kept",
        1,
    )
    assert not choice.number and choice.median_predicted is None
    assert number.number and (number.answered, number.right) == (4, 2)
    assert number.median_predicted == 3.0  # of 4, 0, 10 and 2
    # Of 5, 3 and 1 (the card's figure where the host's is missing); d's has neither.
    assert number.median_measured == 3.0


def test_the_discrimination_pools_quizzes_and_predictions(lesson: Lesson) -> None:
    sessions = [f"s{i}" for i in range(MIN_FOR_DISCRIMINATION)]
    good = {s: i % 2 == 0 for i, s in enumerate(sessions)}
    quiz_attempts = {
        ("carts", "where-cart"): [Attempt(s, good[s], (2,) if good[s] else (1,)) for s in sessions]
    }
    runs = {"kill-choice": [RunRecord(s, "1" if good[s] else "2", good[s], {}) for s in sessions]}
    quizzes, predictions = items_build(lessons=[lesson], quiz_attempts=quiz_attempts, runs=runs)
    assert quizzes[0].discrimination == pytest.approx(1.0)
    assert predictions[0].discrimination == pytest.approx(1.0)
    assert not quizzes[0].needs_more and quizzes[1].needs_more


@pytest.mark.django_db
def test_the_dashboard_reads_the_records(lesson: Lesson) -> None:
    QuizAnswer.objects.create(
        lesson_slug="carts", quiz_id="where-cart", session_hash="a", correct=False, choices=[3]
    )
    QuizAnswer.objects.create(
        lesson_slug="carts", quiz_id="where-cart", session_hash="a", correct=True, choices=[2]
    )
    QuizAnswer.objects.create(  # an answer kept before choices were: counted, no pick
        lesson_slug="carts", quiz_id="where-cart", session_hash="b", correct=False
    )
    record = {"lesson_slug": "carts", "session_hash": "a", "prediction": "1"}
    ExperimentRecord.objects.create(
        lab_id="lab1", experiment_slug="kill-choice", held=True, finished_at="2026-01-01T00:00Z",
        figures={"sessions_lost": 3.0}, **record,
    )  # fmt: skip
    ExperimentRecord.objects.create(  # still running: no outcome yet
        lab_id="lab2", experiment_slug="kill-choice", **{**record, "session_hash": "b"}
    )
    for session, read in (("a", True), ("b", False), ("c", True)):
        LessonReading.objects.create(
            lesson_slug="carts",
            session_hash=session,
            opened_at="2026-01-01T00:00Z",
            read_at="2026-01-01T00:10Z" if read else None,
        )
    dashboard = dashboard_load(lessons=[lesson])
    asked = dashboard.quizzes[0]
    assert (asked.answered, asked.right, asked.wrong_pick) == (2, 0, "In the balancer")
    assert (dashboard.predictions[0].answered, dashboard.predictions[0].right) == (1, 1)
    [reading] = dashboard.reading
    assert (reading.opened, reading.read, reading.percent_read) == (3, 2, 67)
