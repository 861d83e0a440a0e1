"""The dashboard's records (course.records): anonymous, once each, and an experiment's
outcome written once by the session that started it, without ever raising to the socket."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.cache import SessionStore
from django.test import Client
from django.urls import reverse

from course.models import ExperimentRecord, LessonReading, session_hash
from course.records import (
    experiment_outcome_arecord,
    experiment_started,
    outcome_fields,
    reading_finished,
    reading_opened,
)

DONE = {
    "state": "done",
    "outcome": [
        {"figure": "sessions_lost", "value": 4},
        {"figure": "no_such_figure", "value": None},
        {"figure": "relogins", "value": float("nan")},  # not JSON: kept as unknown
        {"figure": 3, "value": 1},  # not a figure's name: dropped
    ],
    "held": False,
    "measured": 4.0,
}


def started(lab_id: str = "lab-1", prediction: str | None = "2") -> SessionStore:
    session = SessionStore()
    experiment_started(
        session=session,
        lab_id=lab_id,
        lesson_slug="stateful-up-close",
        experiment_slug="kill-stateful-worker",
        prediction=prediction,
    )
    return session


@pytest.mark.django_db
def test_a_lesson_is_opened_once_and_read_once_per_session() -> None:
    session = SessionStore()
    reading_opened(session=session, slug="one")
    reading_opened(session=session, slug="one")
    row = LessonReading.objects.get()
    assert session.session_key and row.session_hash == session_hash(session.session_key)
    assert session.session_key not in row.session_hash and row.read_at is None
    reading_finished(session=session, slug="one")
    read_at = LessonReading.objects.get().read_at
    assert read_at is not None
    reading_finished(session=session, slug="one")
    assert LessonReading.objects.get().read_at == read_at


@pytest.mark.django_db
def test_reading_to_the_end_without_a_recorded_opening_counts_as_both() -> None:
    reading_finished(session=SessionStore(), slug="one")
    row = LessonReading.objects.get()
    assert row.read_at == row.opened_at


@pytest.mark.django_db
def test_an_experiment_start_keeps_the_prediction_as_given_and_no_session_key() -> None:
    session = started(prediction="  12345678901234567890123456789012345678901234567890 ")
    record = ExperimentRecord.objects.get()
    assert record.lab_id == "lab-1" and record.experiment_slug == "kill-stateful-worker"
    assert record.prediction == "1234567890" * 4  # trimmed to 40 characters
    assert session.session_key and record.session_hash == session_hash(session.session_key)
    assert record.finished_at is None and record.held is None and record.figures is None


def test_only_a_done_run_has_an_outcome_and_only_well_formed_figures_are_kept() -> None:
    assert outcome_fields(None) is None
    assert outcome_fields({**DONE, "state": "running"}) is None
    assert outcome_fields({**DONE, "state": "failed"}) is None
    assert outcome_fields(DONE) == {
        "held": False,
        "figures": {
            "sessions_lost": 4.0,
            "no_such_figure": None,
            "relogins": None,
            "measured": 4.0,
        },
    }
    odd = outcome_fields({"state": "done", "outcome": "x", "held": "yes", "measured": True})
    assert odd == {"held": None, "figures": {"measured": None}}


@pytest.mark.django_db(transaction=True)  # the async ORM runs in another thread
async def test_the_outcome_is_written_once_by_the_session_that_started_the_run(
    async_orm: None,
) -> None:
    session = await _started()
    key = session.session_key
    assert not await experiment_outcome_arecord(
        lab_id="lab-1", session_key=key, experiment={**DONE, "state": "running"}
    )
    assert await experiment_outcome_arecord(
        lab_id="lab-1", session_key="another-session", experiment={**DONE, "held": True}
    )
    assert (await ExperimentRecord.objects.aget()).finished_at is None  # not theirs to write
    assert await experiment_outcome_arecord(lab_id="lab-1", session_key=key, experiment=DONE)
    first = await ExperimentRecord.objects.aget()
    assert first.finished_at is not None and first.held is False
    assert first.figures == {
        "sessions_lost": 4.0,
        "no_such_figure": None,
        "relogins": None,
        "measured": 4.0,
    }
    # Another socket of the same session sees the finished snapshot too: nothing changes.
    changed = {**DONE, "held": True, "measured": 9.0}
    assert await experiment_outcome_arecord(lab_id="lab-1", session_key=key, experiment=changed)
    again = await ExperimentRecord.objects.aget()
    assert (again.finished_at, again.held, again.figures) == (
        first.finished_at,
        first.held,
        first.figures,
    )


async def test_a_failing_database_is_one_log_line_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No database for this test: pytest-django refuses the query, as a dead server would.
    with caplog.at_level(logging.WARNING, logger="course.records"):
        assert await experiment_outcome_arecord(lab_id="lab-1", session_key="k", experiment=DONE)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["lab lab-1"]
    assert not any(r.exc_info for r in caplog.records)


async def _started(**fields: Any) -> SessionStore:
    return await sync_to_async(started)(**fields)


@pytest.mark.django_db
def test_the_admin_lists_the_records_read_only(admin_client: Client) -> None:
    reading_opened(session=SessionStore(), slug="one")
    started(lab_id="lab-in-admin")
    for model in ("lessonreading", "experimentrecord"):
        page = admin_client.get(reverse(f"admin:course_{model}_changelist"))
        assert page.status_code == 200
        assert admin_client.get(reverse(f"admin:course_{model}_add")).status_code == 403
    page = admin_client.get(reverse("admin:course_experimentrecord_changelist"))
    assert "lab-in-admin" in page.content.decode()
