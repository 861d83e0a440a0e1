"""The course home and lesson pages: content, 404s, staff details, CSP, boosted navigation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils.html import escape

from course import snapshot
from course.snapshot import course_snapshot
from tests.course.conftest import LessonWriter, lesson_text

REAL_LESSONS = [p.stem for p in sorted((Path(settings.BASE_DIR) / "content").glob("*.md"))]
DIAGRAM = "```mermaid\ngraph TD\n  A --> B\n```\n"
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}
# A lesson page records its first opening by a session (course.records): in the database.
pytestmark = pytest.mark.django_db


def csp(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    policy = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.strip() for d in policy.split(";") if d.strip()}


@pytest.mark.parametrize("slug", REAL_LESSONS)
def test_every_real_lesson_page_shows_its_title(client: Client, slug: str) -> None:
    response = client.get(f"/lessons/{slug}/")
    assert response.status_code == 200
    title = course_snapshot().lesson_get(slug=slug).title
    assert f'<h1 id="lesson-title">{escape(title)}</h1>' in response.text


def test_home_lists_lessons_in_order_with_summary_and_minutes(
    client: Client, write_lesson: LessonWriter
) -> None:
    write_lesson("later", title="Later lesson", summary="Comes second.", order=2, minutes=9)
    write_lesson("sooner", title="Sooner lesson", summary="Comes first.", order=1, minutes=4)
    response = client.get("/")
    assert response.status_code == 200
    page = response.text
    assert page.index("Sooner lesson") < page.index("Later lesson")
    assert 'href="/lessons/sooner/"' in page
    assert "Comes first." in page and "Comes second." in page
    assert "4 min read" in page and "9 min read" in page
    assert "about 13 minutes" in page


def test_lesson_page_has_toc_pager_and_content(client: Client, write_lesson: LessonWriter) -> None:
    write_lesson("one", title="One", order=1)
    write_lesson("two", title="Two", order=2, body="## Carts\n\n### In memory\n\nText.\n")
    write_lesson("three", title="Three", order=3)
    page = client.get("/lessons/two/").text
    toc = page[page.index('class="lesson-toc"') : page.index("</nav>", page.index("lesson-toc"))]
    assert re.search(r'<a href="#carts"[^>]*>Carts</a>', toc)
    assert re.search(r'<a href="#in-memory"[^>]*>In memory</a>', toc)
    assert '<h2 id="carts">' in page
    assert re.search(r'href="/lessons/one/" rel="prev">.*?One', page, re.S)
    assert re.search(r'href="/lessons/three/" rel="next">.*?Three', page, re.S)
    assert "Lesson 2 ·" in page


def test_staff_see_the_file_to_edit_and_others_do_not(
    client: Client, admin_client: Client, write_lesson: LessonWriter
) -> None:
    path = write_lesson("one")
    assert path.name not in client.get("/lessons/one/").text
    assert f"<code>{path}</code>" in admin_client.get("/lessons/one/").text


@pytest.mark.parametrize(
    "url",
    [
        "/lessons/nope/",
        "/lessons/../config/",
        "/lessons/%2e%2e/",
        "/lessons/..%2fconfig/",
        "/lessons/%2Fetc%2Fpasswd/",
        "/lessons//etc/passwd/",
        "/lessons/a%5Cb/",
        "/lessons/a%00b/",
        "/lessons/One/",
        "/lessons/one.md/",
        "/lessons/one%2F/",
    ],
)
def test_unknown_slugs_and_traversal_attempts_are_404(
    client: Client, write_lesson: LessonWriter, url: str
) -> None:
    write_lesson("one")
    assert client.get("/lessons/one/").status_code == 200
    assert client.get(url).status_code == 404


def test_an_edited_file_is_served_on_the_next_request(
    client: Client, write_lesson: LessonWriter
) -> None:
    path = write_lesson("live", title="Before the edit")
    assert "Before the edit" in client.get("/lessons/live/").text
    path.write_text(lesson_text(title="After the edit", body="## New section\n"))
    page = client.get("/lessons/live/").text
    assert "After the edit" in page and "New section" in page
    assert "Before the edit" not in page


QUIZ = """```quiz
id: pick
question: Which one?
choices:
  - text: This one
    correct: true
    feedback: Yes, this one.
  - text: That one
    correct: false
    feedback: Not that one.
```
"""


@pytest.mark.django_db
def test_each_learner_gets_their_own_token_feedback_and_staff_note(
    admin_client: Client, write_lesson: LessonWriter
) -> None:
    """The course snapshot is shared by every request; the token, a no-JavaScript answer's
    feedback and the staff note belong to the request that asked."""
    path = write_lesson("q", body=f"## Quiz\n\n{QUIZ}")
    assert f"<code>{path}</code>" in admin_client.get("/lessons/q/").text
    learner, other = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    tokens = []
    for client in (learner, other):
        page = client.get("/lessons/q/").text
        assert path.name not in page
        (header,) = re.findall(r'"X-CSRFToken": "([^"]+)"', page)
        # One token per page: the quiz's form, the lesson's end and htmx's header.
        fields = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert len(fields) == 2 and set(fields) == {header}
        tokens.append(header)
    assert tokens[0] != tokens[1]

    answer = {"choice": "2", "csrfmiddlewaretoken": tokens[0]}
    assert learner.post("/lessons/q/quiz/pick/", answer).status_code == 303
    assert "Not that one." in learner.get("/lessons/q/").text
    assert "Not that one." not in other.get("/lessons/q/").text


BROKEN = "---\ntitle: Broken\nsummary: S\norder: one\nminutes: 5\n---\n\nBody.\n"


def test_broken_lesson_is_unavailable_for_learners_without_details(
    client: Client, write_lesson: LessonWriter
) -> None:
    path = write_lesson("broken", text=BROKEN)
    response = client.get("/lessons/broken/")
    assert response.status_code == 404
    assert "Lesson unavailable" in response.text
    assert path.name not in response.text and "order" not in response.text


def test_broken_lesson_shows_staff_the_file_and_line(
    admin_client: Client, write_lesson: LessonWriter
) -> None:
    path = write_lesson("broken", text=BROKEN)
    response = admin_client.get("/lessons/broken/")
    assert response.status_code == 404
    assert f"<code>{path}:4</code>: front matter field &#x27;order&#x27; must be" in response.text
    home = admin_client.get("/")
    assert f"<code>{path}:4</code>" in home.text  # listed for staff on the home page too


def test_diagram_pages_relax_only_style_src(client: Client, write_lesson: LessonWriter) -> None:
    write_lesson("drawn", body=f"## Figure\n\n{DIAGRAM}")
    write_lesson("plain", order=2)
    drawn, plain = client.get("/lessons/drawn/"), client.get("/lessons/plain/")
    assert csp(drawn)["style-src"] == "style-src 'self' 'unsafe-inline'"
    assert csp(plain)["style-src"] == "style-src 'self'"
    for response in (drawn, plain, client.get("/")):
        assert csp(response)["script-src"] == "script-src 'self'"


def test_mermaid_is_loaded_only_on_pages_with_a_diagram(
    client: Client, write_lesson: LessonWriter
) -> None:
    write_lesson("drawn", body=f"## Figure\n\n{DIAGRAM}")
    write_lesson("plain", order=2)
    drawn = client.get("/lessons/drawn/").text
    assert re.search(
        r'<script src="/static/js/diagrams.js" data-mermaid="/static/vendor/'
        r'mermaid-[\d.]+\.min\.js"></script>',
        drawn,
    )
    assert '<pre class="mermaid">' in drawn
    assert "mermaid" not in client.get("/lessons/plain/").text
    assert "mermaid" not in client.get("/").text


def test_vendored_mermaid_named_in_the_template_exists(client: Client) -> None:
    template = (Path(settings.BASE_DIR) / "templates" / "course" / "lesson.html").read_text()
    (name,) = re.findall(r"vendor/(mermaid-[\d.]+\.min\.js)", template)
    assert (Path(settings.BASE_DIR) / "static" / "vendor" / name).stat().st_size > 1_000_000


def test_boost_from_a_strict_page_into_a_diagram_asks_for_a_full_load(
    client: Client, write_lesson: LessonWriter
) -> None:
    write_lesson("drawn", body=f"## Figure\n\n{DIAGRAM}")
    write_lesson("plain", order=2)
    response = client.get("/lessons/drawn/", headers=BOOSTED)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/lessons/drawn/"
    assert "HX-Boosted" in response["Vary"]

    relaxed = client.get("/lessons/drawn/", headers={**BOOSTED, "X-Inline-Styles": "allowed"})
    assert "HX-Redirect" not in relaxed and '<pre class="mermaid">' in relaxed.text
    assert "HX-Redirect" not in client.get("/lessons/plain/", headers=BOOSTED)


def test_layout_is_ready_for_htmx_under_a_strict_csp(client: Client) -> None:
    page = client.get("/").text
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[A-Za-z0-9]{32,}\"\}'>", page)
    assert (
        '<meta name="htmx-config" content=\'{"allowEval":false,"includeIndicatorStyles":false,'
        '"historyCacheSize":0,"refreshOnHistoryMiss":true}\'>' in page
    )
    assert re.search(r'<script src="/static/django_htmx/htmx-2[.\w]*\.js"', page)
    assert '<header class="site-header" hx-boost="true">' in page
    assert '<main id="main" tabindex="-1" hx-boost="true">' in page
    assert '<a class="skip-link" href="#main">' in page
    assert "<footer" in page and '<nav class="site-nav" aria-label="Main">' in page
    for href in ("/", "/playground/", "/decide/", "/search/"):
        assert f'<li><a href="{href}"' in page
    assert "<script>" not in page and " style=" not in page  # nothing inline for the CSP


def test_theme_script_runs_in_the_head_before_the_stylesheet(client: Client) -> None:
    page = client.get("/").text
    head = page[: page.index("</head>")]
    theme = head.index('<script src="/static/js/theme.js"></script>')  # blocking, not deferred
    assert theme < head.index('href="/static/css/site.css"')


def test_unknown_page_answers_404_with_the_site_layout(client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert 'href="/search/"' in response.content.decode()


def test_a_lesson_too_slow_to_render_is_unavailable_and_not_rendered_again(
    client: Client,
    admin_client: Client,
    write_lesson: LessonWriter,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.LESSON_RENDER_SECONDS = 1
    path = write_lesson("slow", body="## Slow\n\n" + "[" * 40_000 + "\n")
    renders: list[str] = []
    real_render = snapshot.markdown_render_bounded

    def counting_render(**kwargs: Any) -> Any:
        renders.append(kwargs["text"].lstrip()[:7])
        return real_render(**kwargs)

    monkeypatch.setattr(snapshot, "markdown_render_bounded", counting_render)

    learner = client.get("/lessons/slow/")
    assert learner.status_code == 404
    assert "Lesson unavailable" in learner.text and "python-markdown" not in learner.text
    staff = admin_client.get("/lessons/slow/")
    assert staff.status_code == 404
    assert f"<code>{path}:10</code>: rendering took over 1 s and was stopped." in staff.text
    assert renders == ["## Slow"]  # the stopped render is remembered for this file version
