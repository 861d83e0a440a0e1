"""Search: the right lessons for a word, titles and headings first, safe highlighting."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from course.search import MAX_QUERY_LENGTH, SearchResult, search_index_build, search_run
from course.snapshot import course_snapshot
from tests.course.conftest import LessonWriter

URL = reverse("course:search")


@dataclass(frozen=True)
class FakeLesson:
    slug: str
    title: str
    html: str


def run(query: str, lessons: list[FakeLesson] | None = None) -> SearchResult:
    """Search the real course, or these lessons."""
    if lessons is None:
        return search_run(query=query, index=course_snapshot().search_index)
    return search_run(query=query, index=search_index_build(lessons=lessons))


def lessons_mentioning(word: str) -> set[str]:
    """Lessons whose Markdown mentions the word outside quizzes, experiments and diagram
    sources (none of which search indexes): the content, read directly."""
    found = set()
    for path in sorted(settings.CONTENT_DIR.glob("*.md")):
        text = path.read_text()
        text = re.sub(r"\A---\n.*?\n---\n", lambda m: _title_only(m.group(0)), text, flags=re.S)
        text = re.sub(r"^```(?:quiz|mermaid|experiment)\n.*?^```", "", text, flags=re.S | re.M)
        if re.search(rf"\b{word}", text, re.IGNORECASE):
            found.add(path.stem)
    return found


def _title_only(front_matter: str) -> str:
    match = re.search(r"^title:(.*)$", front_matter, re.M)
    return match.group(1) if match else ""


def test_sticky_finds_exactly_the_lessons_that_mention_it() -> None:
    expected = lessons_mentioning("sticky")
    assert len(expected) >= 3  # the course talks about sticky sessions in several lessons
    result = run("sticky")
    assert {hit.slug for hit in result.hits} == expected


def test_headings_rank_above_body_for_sticky() -> None:
    lessons = course_snapshot().lessons
    with_heading = {
        lesson.slug for lesson in lessons if re.search(r"<h[1-4][^>]*>[^<]*[Ss]ticky", lesson.html)
    }
    assert with_heading  # "Sticky sessions" is a section of a lesson
    hits = run("sticky").hits
    top = [hit.slug for hit in hits[: len(with_heading)]]
    assert set(top) == with_heading
    assert any("<mark>" in str(html) for html, _ in hits[0].headings)
    # The heading links go to the section's anchor.
    assert all(anchor for _, anchor in hits[0].headings)


def test_title_beats_heading_beats_body() -> None:
    lessons = [
        FakeLesson("body", "Other things", "<p>Failover is hard.</p>"),
        FakeLesson("heading", "Something", "<h2 id='f'>Failover</h2><p>text</p>"),
        FakeLesson("title", "Failover basics", "<p>text</p>"),
        FakeLesson("many", "Other", "<p>" + "failover " * 30 + "</p>"),
        FakeLesson("none", "Nothing here", "<p>Redis</p>"),
    ]
    hits = run("failover", lessons).hits
    assert [hit.slug for hit in hits][:2] == ["title", "heading"]
    assert {hit.slug for hit in hits} == {"title", "heading", "body", "many"}
    assert hits[2].slug == "many"  # among body matches, more mentions rank higher


def test_every_term_must_match_and_prefixes_match_while_typing() -> None:
    lessons = [
        FakeLesson("a", "A", "<p>sticky sessions pin users</p>"),
        FakeLesson("b", "B", "<p>sticky notes</p>"),
    ]
    assert [h.slug for h in run("sticky sess", lessons).hits] == ["a"]
    assert {h.slug for h in run("stic", lessons).hits} == {"a", "b"}


def test_quizzes_and_diagrams_and_permalinks_are_not_indexed() -> None:
    lessons = [
        FakeLesson(
            "a",
            "A",
            '<h2 id="x">Intro<a class="headerlink" href="#x">#</a></h2>'
            '<pre class="mermaid">flowchart LR</pre>'
            "<p>body</p>",
        )
    ]
    assert run("flowchart", lessons).hits == []
    hit = run("intro", lessons).hits[0]
    assert str(hit.headings[0][0]) == "<mark>Intro</mark>"


def test_highlighting_escapes_content_and_query() -> None:
    lessons = [FakeLesson("a", "A <b>", "<p>Use &lt;script&gt;alert(1)&lt;/script&gt; sticky</p>")]
    hit = run("<script>sticky", lessons).hits[0]
    snippet = str(hit.snippets[0])
    assert "<script>" not in snippet
    assert "&lt;<mark>script</mark>&gt;" in snippet
    assert "<mark>sticky</mark>" in snippet
    assert str(hit.title_html) == "A &lt;b&gt;"


def test_quiz_text_is_not_in_the_index(write_lesson: LessonWriter) -> None:
    quiz = (
        "```quiz\nid: q\nquestion: Zebras?\nchoices:\n"
        "  - {text: a, correct: true, feedback: f}\n"
        "  - {text: b, correct: false, feedback: g}\n```\n"
    )
    write_lesson("a", body=f"## Intro\n\nOkapis.\n\n{quiz}")
    assert run("okapis").hits
    assert not run("zebras").hits


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Type a word"),
        ("   ", "Type a word"),
        ("a", "at least 2 letters"),
        ("x" * (MAX_QUERY_LENGTH + 1), "too long"),
        ("zzzqqq", "No lesson mentions"),
    ],
)
def test_query_limits_and_hints(query: str, message: str) -> None:
    result = run(query)
    assert message in result.message
    assert result.hits == []


@pytest.mark.django_db
def test_search_page_without_js_and_with_htmx(client: Client) -> None:
    html = client.get(URL, {"q": "sticky"}).content.decode()
    assert '<form class="search-form" method="get"' in html
    assert 'hx-trigger="input changed delay:300ms, search"' in html
    assert 'value="sticky"' in html
    assert "<mark>sticky</mark>" in html.lower()
    for slug in lessons_mentioning("sticky"):
        assert reverse("course:lesson", kwargs={"slug": slug}) in html

    response = client.get(URL, {"q": "sticky"}, headers={"HX-Request": "true"})
    partial = response.content.decode()
    assert partial.lstrip().startswith('<div id="search-results"')
    assert "<html" not in partial
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_search_page_escapes_the_query(client: Client) -> None:
    evil = '"><script>alert(1)</script>'
    html = client.get(URL, {"q": evil}).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.django_db
def test_search_page_handles_long_and_empty_queries(client: Client) -> None:
    assert "Type a word" in client.get(URL).content.decode()
    response = client.get(URL, {"q": "sticky " * 100})
    assert response.status_code == 200
    assert "too long" in response.content.decode()
