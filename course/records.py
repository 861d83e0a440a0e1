"""Anonymous records for the instructors' dashboard (course.stats reads them): quiz answers,
lessons opened and read to their end, experiments' predictions and outcomes.

A browser session is kept only as its keyed hash (course.models.session_hash), never its
key. Reading and experiment records never break a page or the lab socket: a database error
is one log line. `experiment_outcome_arecord` is for the lab socket and never blocks its
event loop (Django's async ORM).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.db import DatabaseError
from django.utils import timezone

from course.models import ExperimentRecord, LessonReading, QuizAnswer, session_hash

log = logging.getLogger("course.records")
PREDICTION_CHARS = 40  # as the card's form sent it: a choice number, or a number


def _hash(session: SessionBase) -> str:
    if session.session_key is None:
        session.save()  # the anonymous hash needs a key that will last
    return session_hash(str(session.session_key))


def quiz_answer_record(
    *, session: SessionBase, slug: str, quiz_id: str, correct: bool, choices: list[int]
) -> None:
    """A checked answer: what the statistics are for, so a database error is the page's."""
    QuizAnswer.objects.create(
        lesson_slug=slug,
        quiz_id=quiz_id,
        session_hash=_hash(session),
        correct=correct,
        choices=choices,
    )


def reading_opened(*, session: SessionBase, slug: str) -> None:
    """The session opened lesson `slug` (a second opening changes nothing)."""
    try:
        LessonReading.objects.bulk_create(
            [
                LessonReading(
                    lesson_slug=slug, session_hash=_hash(session), opened_at=timezone.now()
                )
            ],
            ignore_conflicts=True,
        )
    except DatabaseError as exc:
        log.warning("lesson %s: opening not recorded: %r", slug, exc)


def reading_finished(*, session: SessionBase, slug: str) -> None:
    """The session reached the end of lesson `slug` (the first time counts)."""
    now = timezone.now()
    try:
        hashed = _hash(session)
        # Opened before these records existed: the row starts now.
        LessonReading.objects.bulk_create(
            [LessonReading(lesson_slug=slug, session_hash=hashed, opened_at=now)],
            ignore_conflicts=True,
        )
        LessonReading.objects.filter(
            lesson_slug=slug, session_hash=hashed, read_at__isnull=True
        ).update(read_at=now)
    except DatabaseError as exc:
        log.warning("lesson %s: reading to the end not recorded: %r", slug, exc)


def experiment_started(
    *,
    session: SessionBase,
    lab_id: str,
    lesson_slug: str,
    experiment_slug: str,
    prediction: str | None,
) -> None:
    """A learner started an experiment on lab `lab_id`, with their prediction as given."""
    try:
        ExperimentRecord.objects.create(
            lab_id=lab_id,
            lesson_slug=lesson_slug,
            experiment_slug=experiment_slug,
            session_hash=_hash(session),
            prediction=(prediction or "").strip()[:PREDICTION_CHARS],
        )
    except DatabaseError as exc:
        log.warning("experiment %s on lab %s not recorded: %r", experiment_slug, lab_id, exc)


def outcome_fields(experiment: Any) -> dict[str, Any] | None:
    """From a lab snapshot's `experiment`: the record's outcome fields once the run is done,
    else None. The snapshot comes from the lab host: only well-formed figures are kept."""
    if not isinstance(experiment, dict) or experiment.get("state") != "done":
        return None
    figures: dict[str, float | None] = {}
    outcome = experiment.get("outcome")
    for item in outcome if isinstance(outcome, list) else []:
        if isinstance(item, dict) and isinstance(item.get("figure"), str):
            figures[item["figure"][:100]] = _number(item.get("value"))
    held = experiment.get("held")
    return {
        "held": held if isinstance(held, bool) else None,
        "figures": {**figures, "measured": _number(experiment.get("measured"))},
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def experiment_pair_outcome_record(
    *, session: SessionBase, lab_id: str, held: bool | None, figures: dict[str, float | None]
) -> None:
    """A side-by-side run judged on its page: the outcome on its record (its first lab's),
    once, for the session that started it."""
    if session.session_key is None:
        return
    fields = {"held": held, "figures": {k[:100]: _number(v) for k, v in figures.items()}}
    try:
        ExperimentRecord.objects.filter(
            lab_id=lab_id, session_hash=session_hash(session.session_key), finished_at__isnull=True
        ).update(finished_at=timezone.now(), **fields)
    except DatabaseError as exc:
        log.warning("lab %s: experiment outcome not recorded: %r", lab_id, exc)


async def experiment_outcome_arecord(
    *, lab_id: str, session_key: str | None, experiment: Any
) -> bool:
    """Write a done run's outcome on its record, once: only the session that started it,
    only while it has none. True when there is nothing more to do for this run (written
    now or before, or the write failed and was logged); False while it is not done."""
    fields = outcome_fields(experiment)
    if fields is None:
        return False
    if session_key is None:
        return True
    try:
        await ExperimentRecord.objects.filter(
            lab_id=lab_id, session_hash=session_hash(session_key), finished_at__isnull=True
        ).aupdate(finished_at=timezone.now(), **fields)
    except Exception as exc:  # whatever it is, the lab socket lives on: one line
        log.warning("lab %s: experiment outcome not recorded: %r", lab_id, exc)
    return True
