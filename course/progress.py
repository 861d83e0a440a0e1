"""A learner's progress without an account: lessons read, quizzes answered, experiments run.

It lives in the Django session, whose engine is the cache on Redis, so any web process
serves any learner and a restart of the web tier forgets nothing. Only plain JSON types
go into the session; nothing here talks to the database.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

SESSION_KEY = "progress"


@dataclass(frozen=True)
class LessonProgress:
    slug: str
    title: str
    read: bool
    quizzes_total: int
    quizzes_right: int  # answered correctly at least once
    quizzes_answered: int
    experiments_total: int = 0
    experiments_run: int = 0

    @property
    def percent(self) -> int:
        steps = self.quizzes_total + self.experiments_total
        if not steps:
            return 100 if self.read else 0
        return round(100 * (self.quizzes_right + self.experiments_run) / steps)


@dataclass(frozen=True)
class CourseProgress:
    lessons: list[LessonProgress]
    continue_slug: str | None
    continue_title: str | None
    started: bool

    @property
    def read_count(self) -> int:
        return sum(p.read for p in self.lessons)

    @property
    def quizzes_total(self) -> int:
        return sum(p.quizzes_total for p in self.lessons)

    @property
    def quizzes_right(self) -> int:
        return sum(p.quizzes_right for p in self.lessons)

    @property
    def experiments_total(self) -> int:
        return sum(p.experiments_total for p in self.lessons)

    @property
    def experiments_run(self) -> int:
        return sum(p.experiments_run for p in self.lessons)

    @property
    def percent(self) -> int:
        """Quizzes answered correctly, experiments run and lessons read, each counting as
        one step."""
        steps = self.quizzes_total + self.experiments_total + len(self.lessons)
        if not steps:
            return 0
        done = self.quizzes_right + self.experiments_run + self.read_count
        return round(100 * done / steps)

    def for_slug(self, slug: str) -> LessonProgress | None:
        return next((p for p in self.lessons if p.slug == slug), None)


def _data(session: MutableMapping[str, Any]) -> dict[str, Any]:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        data = {"lessons": {}, "last": None}
    data.setdefault("lessons", {})
    data.setdefault("last", None)
    return data


def _lesson(data: dict[str, Any], slug: str) -> dict[str, Any]:
    lesson = data["lessons"].setdefault(slug, {})
    lesson.setdefault("read", False)
    lesson.setdefault("quizzes", {})
    return lesson


def progress_visit(*, session: MutableMapping[str, Any], slug: str) -> bool:
    """A lesson page was shown: remember it, so that "Continue" goes on after it. True the
    first time this session opens the lesson (the view records that once, not per view)."""
    data = _data(session)
    lesson = _lesson(data, slug)
    first = not lesson.get("opened")
    if data["last"] == slug and not first:
        return False  # nothing changed: don't rewrite the session on every page view
    lesson["opened"] = True
    data["last"] = slug
    session[SESSION_KEY] = data
    return first


def progress_mark_read(*, session: MutableMapping[str, Any], slug: str) -> None:
    """The learner reached the end of a lesson: it counts as read."""
    data = _data(session)
    lesson = _lesson(data, slug)
    if lesson["read"] and data["last"] == slug:
        return
    lesson["read"] = True
    data["last"] = slug
    session[SESSION_KEY] = data


def progress_has_read(*, session: MutableMapping[str, Any], slug: str) -> bool:
    stored = _data(session)["lessons"].get(slug)
    return isinstance(stored, dict) and bool(stored.get("read"))


def progress_record_answer(
    *,
    session: MutableMapping[str, Any],
    slug: str,
    quiz_id: str,
    correct: bool,
    selected: list[int],
) -> None:
    """An answer to a quiz: counted, and kept (the choice numbers) so that the lesson
    shows it again, with its feedback, when the learner comes back."""
    data = _data(session)
    quiz = _lesson(data, slug)["quizzes"].setdefault(
        quiz_id, {"attempts": 0, "correct": False, "ever_correct": False}
    )
    quiz["attempts"] = int(quiz.get("attempts", 0)) + 1
    quiz["correct"] = correct
    quiz["ever_correct"] = bool(quiz.get("ever_correct")) or correct
    quiz["selected"] = selected
    data["last"] = slug
    session[SESSION_KEY] = data


def progress_record_experiment(
    *, session: MutableMapping[str, Any], slug: str, experiment: str
) -> None:
    """The learner ran one of lesson `slug`'s experiments (it counts like a quiz answer)."""
    data = _data(session)
    lesson = _lesson(data, slug)
    ran = lesson.get("experiments")
    ran = ran if isinstance(ran, list) else []
    if experiment not in ran:
        lesson["experiments"] = [*ran, experiment]
        session[SESSION_KEY] = data


def progress_answers(*, session: MutableMapping[str, Any], slug: str) -> dict[str, list[int]]:
    """The last answer given to each quiz of a lesson (choice numbers), by quiz id."""
    stored = _data(session)["lessons"].get(slug)
    quizzes = stored.get("quizzes") if isinstance(stored, dict) else None
    if not isinstance(quizzes, dict):
        return {}
    answers = {}
    for quiz_id, quiz in quizzes.items():
        selected = quiz.get("selected") if isinstance(quiz, dict) else None
        if isinstance(selected, list) and all(isinstance(n, int) for n in selected):
            answers[quiz_id] = selected
    return answers


def progress_reset(*, session: MutableMapping[str, Any]) -> None:
    session.pop(SESSION_KEY, None)


def progress_summary(
    *, session: MutableMapping[str, Any], lessons: Iterable[Any]
) -> CourseProgress:
    """Progress over the lessons as they are now (content changes live: only quizzes that
    still exist count)."""
    data = _data(session)
    rows: list[LessonProgress] = []
    for lesson in lessons:
        stored = data["lessons"].get(lesson.slug, {})
        answers = stored.get("quizzes", {}) if isinstance(stored, dict) else {}
        quiz_ids = set(lesson.quiz_ids)
        experiments = set(lesson.experiment_slugs)
        ran = stored.get("experiments") if isinstance(stored, dict) else None
        ran_here = experiments & set(ran if isinstance(ran, list) else [])
        rows.append(
            LessonProgress(
                slug=lesson.slug,
                title=lesson.title,
                read=bool(stored.get("read")) if isinstance(stored, dict) else False,
                quizzes_total=len(quiz_ids),
                quizzes_right=sum(
                    1
                    for q in quiz_ids
                    if isinstance(answers.get(q), dict) and answers[q].get("ever_correct")
                ),
                quizzes_answered=sum(1 for q in quiz_ids if q in answers),
                experiments_total=len(experiments),
                experiments_run=len(ran_here),
            )
        )
    # Continue with the first unread lesson after the last one visited (in course order),
    # else the first unread one at all.
    last = data.get("last")
    slugs = [p.slug for p in rows]
    after = slugs.index(last) + 1 if isinstance(last, str) and last in slugs else 0
    unread = [p for p in rows[after:] + rows[:after] if not p.read]
    target = unread[0] if unread else None
    started = any(p.read or p.quizzes_answered or p.experiments_run for p in rows)
    return CourseProgress(
        lessons=rows,
        continue_slug=target.slug if target else None,
        continue_title=target.title if target else None,
        started=started,
    )
