"""The instructors' preview: staff only, the lesson pipeline (sanitized), check messages."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from course.author import MAX_PREVIEW_BYTES, preview_build
from course.snapshot import course_snapshot
from tests.course.conftest import lesson_text

PAGE = reverse("course:author_preview")
RENDER = reverse("course:author_preview_render")

LESSON = """\
---
title: A draft
summary: A lesson being written.
order: 99
minutes: 3
---

## Sticky sessions

Some **bold** text.<script>alert("x")</script> <a href="javascript:alert(1)" onclick="x()">link</a>

```quiz
id: draft-quiz
question: "Where did the cart live?"
choices:
  - text: "In worker-2's memory"
    correct: true
    feedback: "Right."
  - text: "In Redis"
    correct: false
    feedback: "Not in stateful mode."
```

```quiz
id: broken-quiz
question: "Only one choice"
choices:
  - text: "Alone"
    correct: true
    feedback: "Lonely."
```

A [dead link](/lessons/no-such-lesson/).
"""


@pytest.fixture
def staff_client(db) -> Client:
    get_user_model().objects.create_user("teacher", password="pw-teacher-1", is_staff=True)
    client = Client()
    client.login(username="teacher", password="pw-teacher-1")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_and_non_staff_users_go_to_the_admin_login(client: Client, method: str) -> None:
    url = PAGE if method == "get" else RENDER
    response = getattr(client, method)(url, {"text": "x"} if method == "post" else {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

    get_user_model().objects.create_user("learner", password="pw-learner-1")
    client.login(username="learner", password="pw-learner-1")
    response = getattr(client, method)(url, {"text": "x"} if method == "post" else {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_page_loads_a_lesson_source(staff_client: Client) -> None:
    html = staff_client.get(PAGE, {"lesson": "stateful-up-close"}).content.decode()
    source = (settings.CONTENT_DIR / "stateful-up-close.md").read_text()
    textarea = re.search(r'<textarea id="author-text"[^>]*>(.*?)</textarea>', html, re.S)
    assert textarea
    import html as html_module

    assert html_module.unescape(textarea.group(1)).strip() == source.strip()
    assert 'hx-trigger="input changed delay:400ms"' in html
    # The lesson as learners see it, quizzes included, and no problems for a good lesson.
    assert 'class="quiz"' in html
    assert "No problems." in html


def test_preview_is_sanitized_and_shows_quizzes_and_check_messages(staff_client: Client) -> None:
    response = staff_client.post(
        RENDER, {"text": LESSON, "lesson": "a-draft"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="author-preview"')
    assert "<strong>bold</strong>" in html
    rendered = html[html.index('class="author-rendered') :]
    assert "<script>" not in rendered and "javascript:" not in rendered
    assert "onclick" not in rendered and "alert" not in rendered
    assert 'id="quiz-draft-quiz"' in html
    assert "Where did the cart live?" in html
    assert "Right." not in html  # still no answers in the page
    # The broken quiz: staff see where and why, the messages name file:line.
    assert "This quiz is broken" in html
    lines = LESSON.splitlines()
    choices_line = lines.index("choices:", lines.index("id: broken-quiz")) + 1
    assert (
        f"content/a-draft.md:{choices_line}</code> quiz &#x27;broken-quiz&#x27;: needs 2 to 5"
        in html
    )
    problems = re.search(r'<ul class="author-problems">(.*?)</ul>', html, re.S)
    assert problems
    dead_line = LESSON.splitlines().index("A [dead link](/lessons/no-such-lesson/).") + 1
    assert f"content/a-draft.md:{dead_line}: link to" in problems.group(1)
    assert "needs 2 to 5 choices" in problems.group(1)


def test_the_preview_writes_nothing_into_the_content(staff_client: Client) -> None:
    before = sorted(p.name for p in settings.CONTENT_DIR.iterdir())
    staff_client.post(RENDER, {"text": LESSON, "lesson": "a-draft"})
    assert sorted(p.name for p in settings.CONTENT_DIR.iterdir()) == before


def test_preview_without_js_is_the_whole_page(staff_client: Client) -> None:
    html = staff_client.post(RENDER, {"text": LESSON, "lesson": "a-draft"}).content.decode()
    assert "<html" in html
    assert "Lesson preview" in html
    assert "Some <strong>bold</strong> text." in html


def test_preview_size_limit(staff_client: Client) -> None:
    text = "x" * (MAX_PREVIEW_BYTES + 1)
    html = staff_client.post(
        RENDER, {"text": text}, headers={"HX-Request": "true"}
    ).content.decode()
    assert f"at most {MAX_PREVIEW_BYTES // 1024} KB" in html
    assert "author-rendered" not in html


def test_missing_front_matter_is_reported_and_the_body_still_shown() -> None:
    preview = preview_build(text="## Just a heading\n\nText.", slug="")
    assert preview.slug == "new-lesson"
    assert "<h2" in preview.html
    assert any(p.startswith("1: no front matter") for p in preview.problems)


@pytest.mark.parametrize("front_matter", ["", lesson_text(body="")])
def test_a_text_too_slow_to_render_is_stopped_with_a_message(
    settings: Any, front_matter: str
) -> None:
    settings.LESSON_RENDER_SECONDS = (
        3  # stops the 40 KB run; a plain lesson renders in time, even on a loaded machine
    )
    text = f"{front_matter}## Slow\n\n" + "[" * 40_000 + "\n"
    preview = preview_build(text=text, slug="slow")
    line = text.count("\n", 0, text.index("[")) + 1
    assert preview.error.startswith(f"Line {line}: rendering took over 3 s and was stopped.")
    assert preview.html == ""


DASHBOARD = reverse("course:instructor_dashboard")


@pytest.mark.django_db
def test_the_dashboard_sends_anyone_but_staff_to_the_admin_login(client: Client) -> None:
    assert client.get(DASHBOARD)["Location"].startswith(reverse("admin:login"))
    get_user_model().objects.create_user("learner", password="pw-learner-1")
    client.login(username="learner", password="pw-learner-1")
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def _row(html: str, table: str, key: str) -> list[str]:
    """The cells of a dashboard row, as text."""
    section = html.split(f'data-table="{table}"', 1)[1].split("</table>", 1)[0]
    row = re.search(rf'<tr data-(?:item|lesson)="{re.escape(key)}">(.*?)</tr>', section, re.S)
    assert row, key
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row.group(1), re.S)
    return [_text(c) for c in cells]


def _text(fragment: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def test_the_dashboard_lists_every_question_prediction_and_lesson(
    staff_client: Client, client: Client
) -> None:
    snapshot = course_snapshot()
    lesson = next(one for one in snapshot.lessons if one.quiz_ids)
    quiz = lesson.quiz(lesson.quiz_ids[0])
    assert quiz is not None
    wrong = next(c for c in quiz.choices if not c.correct)
    client.get(reverse("course:lesson", args=[lesson.slug]))
    client.post(
        reverse("course:quiz_answer", args=[lesson.slug, quiz.id]), {"choice": wrong.number}
    )

    response = staff_client.get(DASHBOARD)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<caption") == 3
    headers = re.findall(r"<th( scope=\"(?:col|row)\")?[ >]", page)
    assert headers and all(scope for scope in headers)  # every header cell says its scope
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " style=" not in page  # CSP

    items = re.findall(r'<tr data-item="([^"]+)"', page)
    quiz_keys = [f"{one.slug}/{q}" for one in snapshot.lessons for q in one.quiz_ids]
    experiment_keys = [e for one in snapshot.lessons for e in one.experiment_slugs]
    assert items == quiz_keys + experiment_keys  # in course order, answered or not
    answered = _row(page, "quizzes", f"{lesson.slug}/{quiz.id}")
    assert answered[0] == _text(quiz.question_html)
    assert answered[1:] == [lesson.title, "1", "0%", f"{wrong.text} (1)", "needs 20 answers"]
    other = _row(page, "quizzes", quiz_keys[1])
    assert other[2:] == ["0", "–", "–", "needs 20 answers"]
    assert _row(page, "reading", lesson.slug)[1:] == ["1", "0", "0%"]
    assert _row(page, "reading", snapshot.lessons[-1].slug)[1:] == ["0", "0", "–"]
