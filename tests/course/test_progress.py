"""Progress without login: read marks, quiz marks, reset, the home page's bars, restarts."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.parse
import urllib.request

import pytest
from django.test import Client
from django.urls import reverse

from course.models import LessonReading, session_hash
from course.progress import (
    progress_answers,
    progress_mark_read,
    progress_record_answer,
    progress_record_experiment,
    progress_reset,
    progress_summary,
    progress_visit,
)
from course.snapshot import course_snapshot
from tests.conftest import start_daphne, stop_process

HOME = reverse("course:home")


def lesson_url(slug: str) -> str:
    return reverse("course:lesson", kwargs={"slug": slug})


def read_url(slug: str) -> str:
    return reverse("course:lesson_read", kwargs={"slug": slug})


def answer_url(slug: str, quiz_id: str) -> str:
    return reverse("course:quiz_answer", kwargs={"slug": slug, "quiz_id": quiz_id})


def first_single_choice_quiz(lesson):
    return next(s.quiz for s in lesson.quizzes if s.quiz and not s.quiz.multiple)


def test_an_experiment_run_counts_like_a_quiz_answer_once() -> None:
    lessons = course_snapshot().lessons
    lesson = next(lesson for lesson in lessons if lesson.experiment_slugs)
    session: dict = {}
    before = progress_summary(session=session, lessons=lessons)
    for _ in range(2):  # running it again counts once
        progress_record_experiment(
            session=session, slug=lesson.slug, experiment=lesson.experiment_slugs[0]
        )
    progress_record_experiment(session=session, slug=lesson.slug, experiment="not-in-it")
    after = progress_summary(session=session, lessons=lessons)
    row = after.for_slug(lesson.slug)
    assert row is not None and row.experiments_run == 1
    assert row.experiments_total == len(lesson.experiment_slugs)
    assert after.experiments_run == 1 and after.started and not before.started
    assert after.percent > before.percent


def test_a_visit_says_whether_the_session_opens_the_lesson_for_the_first_time() -> None:
    session: dict = {}
    assert progress_visit(session=session, slug="one") is True
    assert progress_visit(session=session, slug="one") is False
    assert progress_visit(session=session, slug="two") is True
    assert progress_visit(session=session, slug="one") is False  # back to it: not new
    assert session["progress"]["last"] == "one"


def test_summary_counts_read_marks_and_quizzes_right() -> None:
    lessons = course_snapshot().lessons
    first, second = lessons[0], lessons[1]
    session: dict = {}
    summary = progress_summary(session=session, lessons=lessons)
    assert not summary.started
    assert summary.percent == 0
    assert summary.continue_slug == first.slug  # nothing read: the first unread lesson

    progress_mark_read(session=session, slug=second.slug)
    quiz_id = second.quiz_ids[0]

    def answer(*, correct: bool, selected: list[int]) -> None:
        progress_record_answer(
            session=session, slug=second.slug, quiz_id=quiz_id, correct=correct, selected=selected
        )

    answer(correct=False, selected=[1])
    summary = progress_summary(session=session, lessons=lessons)
    row = summary.for_slug(second.slug)
    assert row is not None and row.read and row.quizzes_answered == 1 and row.quizzes_right == 0
    # The next unread lesson after the last one visited: the third, not the first.
    assert summary.continue_slug == lessons[2].slug

    answer(correct=True, selected=[2])
    answer(correct=False, selected=[3])
    row = progress_summary(session=session, lessons=lessons).for_slug(second.slug)
    assert row is not None and row.quizzes_right == 1  # ever correct counts
    assert session["progress"]["lessons"][second.slug]["quizzes"][quiz_id] == {
        "attempts": 3,
        "correct": False,
        "ever_correct": True,
        "selected": [3],
    }
    assert progress_answers(session=session, slug=second.slug) == {quiz_id: [3]}
    # Answers to quizzes that are no longer in the lesson do not count.
    progress_record_answer(
        session=session, slug=second.slug, quiz_id="gone", correct=True, selected=[1]
    )
    row = progress_summary(session=session, lessons=lessons).for_slug(second.slug)
    assert row is not None and row.quizzes_right == 1

    total = sum(1 + len(lesson.quiz_ids) + len(lesson.experiment_slugs) for lesson in lessons)
    assert progress_summary(session=session, lessons=lessons).percent == round(100 * 2 / total)
    progress_reset(session=session)
    assert not progress_summary(session=session, lessons=lessons).started


@pytest.mark.django_db
def test_reading_and_answering_show_on_home(client: Client) -> None:
    lessons = course_snapshot().lessons
    lesson = lessons[1]
    quiz = first_single_choice_quiz(lesson)
    right = next(c for c in quiz.choices if c.correct)

    home = client.get(HOME).content.decode()
    assert "Your progress" in home
    assert _lesson_row(home, lesson.slug).count("not read yet") == 1
    assert "Start the course" in home
    assert "Reset progress" not in home  # nothing to reset yet

    page = client.get(lesson_url(lesson.slug)).content.decode()
    assert "Mark this lesson read" in page
    # Opened is not read: reaching the end is.
    assert _lesson_row(client.get(HOME).content.decode(), lesson.slug).count("not read yet")
    reached = client.post(read_url(lesson.slug), headers={"HX-Request": "true"})
    assert "You have read this lesson" in reached.content.decode()
    assert "<html" not in reached.content.decode()  # only the end's partial
    client.post(
        answer_url(lesson.slug, quiz.id),
        {"choice": str(right.number)},
        headers={"HX-Request": "true"},
    )
    home = client.get(HOME).content.decode()
    row = _lesson_row(home, lesson.slug)
    assert "✓ read" in row
    assert "You have read this lesson" in client.get(lesson_url(lesson.slug)).content.decode()
    assert f'max="{len(lesson.quiz_ids)}" value="1"' in row
    assert f"1/{len(lesson.quiz_ids)} quizzes right" in row
    # The first unread lesson after the one read last.
    assert f"Continue with the next unread lesson: {lessons[2].title}" in home
    assert _lesson_row(home, lessons[0].slug).count("not read yet") == 1
    overall = re.search(r'id="progress-overall" max="100" value="(\d+)"', home)
    assert overall and int(overall.group(1)) > 0


@pytest.mark.django_db
def test_opening_and_reading_to_the_end_are_recorded_once_per_session(client: Client) -> None:
    first, second = course_snapshot().lessons[:2]
    for _ in range(2):  # opened twice, and another lesson in between
        client.get(lesson_url(first.slug))
        client.get(lesson_url(second.slug))
    rows = {r.lesson_slug: r for r in LessonReading.objects.all()}
    assert set(rows) == {first.slug, second.slug}
    assert rows[first.slug].read_at is None
    session_key = client.session.session_key
    assert session_key and rows[first.slug].session_hash == session_hash(session_key)

    client.post(read_url(first.slug), headers={"HX-Request": "true"})
    read_at = LessonReading.objects.get(lesson_slug=first.slug).read_at
    assert read_at is not None
    client.post(read_url(first.slug))  # the first time counts
    assert LessonReading.objects.get(lesson_slug=first.slug).read_at == read_at

    Client().get(lesson_url(first.slug))  # another browser
    opened = LessonReading.objects.filter(lesson_slug=first.slug)
    assert opened.count() == 2 and opened.filter(read_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_reset_is_a_post_and_clears_progress(client: Client) -> None:
    lesson = course_snapshot().lessons[0]
    client.post(read_url(lesson.slug))
    assert "✓ read" in _lesson_row(client.get(HOME).content.decode(), lesson.slug)
    assert client.get(reverse("course:progress_reset")).status_code == 405
    response = client.post(reverse("course:progress_reset"))
    assert response.status_code == 303 and response["Location"] == HOME
    home = client.get(HOME).content.decode()
    assert "✓ read" not in home
    assert "Start the course" in home


@pytest.mark.django_db
def test_progress_is_per_browser(client: Client) -> None:
    lesson = course_snapshot().lessons[0]
    client.post(read_url(lesson.slug))
    other = Client()
    assert "✓ read" not in other.get(HOME).content.decode()


def _lesson_row(home: str, slug: str) -> str:
    match = re.search(rf'<p class="progress-lesson[^"]*" data-slug="{slug}">(.*?)</p>', home, re.S)
    assert match, f"no progress row for {slug}"
    return match.group(1)


# ---------------------------------------------------------------------------------------
# A real server, a real HTTP client, a restart in between


class Browser:
    """urllib with a cookie jar: what a browser without JavaScript does."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=20) as response:
            return response.read().decode()

    def post(self, path: str, data: dict[str, str], referer_path: str) -> str:
        request = urllib.request.Request(
            self.base_url + path,
            data=urllib.parse.urlencode(data).encode(),
            headers={"Referer": self.base_url + referer_path},
        )
        with self.opener.open(request, timeout=20) as response:
            return response.read().decode()


def test_progress_survives_a_restart_of_the_web_server(server_env: dict[str, str]) -> None:
    lesson = course_snapshot().lessons[2]
    quiz = first_single_choice_quiz(lesson)
    right = next(c for c in quiz.choices if c.correct)

    process, base_url = start_daphne(server_env)
    try:
        browser = Browser(base_url)
        page = browser.get(lesson_url(lesson.slug))
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token
        # The no-JavaScript form: POST, then follow the redirect back to the lesson.
        after = browser.post(
            answer_url(lesson.slug, quiz.id),
            {"csrfmiddlewaretoken": token.group(1), "choice": str(right.number)},
            referer_path=lesson_url(lesson.slug),
        )
        assert "Correct!" in after
        # The end of the lesson, without JavaScript: its button, then back to the lesson.
        after = browser.post(
            read_url(lesson.slug),
            {"csrfmiddlewaretoken": token.group(1)},
            referer_path=lesson_url(lesson.slug),
        )
        assert "You have read this lesson" in after
    finally:
        stop_process(process)

    process, base_url = start_daphne(server_env)
    try:
        browser.base_url = base_url  # a new port; the session cookie is host-wide
        home = browser.get(HOME)
    finally:
        stop_process(process)
    row = _lesson_row(home, lesson.slug)
    assert "✓ read" in row
    assert f"1/{len(lesson.quiz_ids)} quizzes right" in row
    following = course_snapshot().lessons[3]
    assert f"Continue with the next unread lesson: {following.title}" in home


@pytest.mark.django_db
def test_home_lists_each_lesson_once_with_its_progress_in_its_card(client: Client) -> None:
    lessons = course_snapshot().lessons
    client.post(read_url(lessons[0].slug))
    home = client.get(HOME).content.decode()
    cards = home[home.index('class="lesson-list"') :]
    for lesson in lessons:
        # Once in its card (and once more in the "Continue" button, for the next one).
        expected = 2 if lesson == lessons[1] else 1
        assert home.count(f'href="{lesson_url(lesson.slug)}"') == expected, lesson.slug
        assert f'data-slug="{lesson.slug}"' in cards
    assert "✓ read" in _lesson_row(cards, lessons[0].slug)
