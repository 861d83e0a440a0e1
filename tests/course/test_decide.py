"""The /decide/ page: every path ends in a recommendation, URLs are states, bad input is safe."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from course.decide import QUESTIONS, RECOMMENDATIONS, all_paths, decision_make
from course.snapshot import course_snapshot

URL = reverse("course:decide")


def params(query: dict[str, str]) -> dict[str, list[str]]:
    return {key: [value] for key, value in query.items()}


def test_there_is_one_recommendation_per_path() -> None:
    paths = all_paths()
    assert len(paths) == 8
    titles = set()
    for path in paths:
        decision = decision_make(params=params(path))
        assert decision.error == ""
        assert decision.next_question is None
        assert decision.recommendation is not None
        assert len(decision.steps) == len(QUESTIONS)
        titles.add(decision.recommendation.title)
    assert len(titles) == len(RECOMMENDATIONS) == 8


def test_recommendations_link_existing_lessons() -> None:
    slugs = {lesson.slug for lesson in course_snapshot().lessons}
    for recommendation in RECOMMENDATIONS.values():
        # At least two of the suggested lessons exist, so no page ends without reading.
        assert len(set(recommendation.lessons) & slugs) >= 2, recommendation.title


def test_partial_paths_ask_the_next_question() -> None:
    assert decision_make(params={}).next_question is QUESTIONS[0]
    decision = decision_make(params=params({"external": "no"}))
    assert decision.next_question is QUESTIONS[1]
    assert decision.steps[0].option.value == "no"
    assert decision.steps[0].change_query == ""
    decision = decision_make(params=params({"external": "no", "scale": "yes"}))
    assert decision.steps[1].change_query == "external=no"


@pytest.mark.parametrize(
    "query",
    [
        {"external": ["maybe"]},
        {"external": ["yes"], "scale": ["<script>alert(1)</script>"]},
        {"scale": ["yes"]},  # a later answer without the first
        {"external": ["yes", "no"]},
        {"external": ["yes"], "temporary": ["session"]},
    ],
)
def test_bad_parameters_start_over_with_a_message(query: dict[str, list[str]]) -> None:
    decision = decision_make(params=query)
    assert decision.error.endswith("Let's start over.")
    assert decision.steps == ()
    assert decision.next_question is QUESTIONS[0]


@pytest.mark.django_db
@pytest.mark.parametrize("path", all_paths())
def test_every_path_renders_a_recommendation_page(client: Client, path: dict[str, str]) -> None:
    response = client.get(f"{URL}?{urlencode(path)}")
    assert response.status_code == 200
    html = response.content.decode()
    recommendation = decision_make(params=params(path)).recommendation
    assert recommendation is not None
    assert "Recommendation:" in html
    assert recommendation.title in html.replace("&#x27;", "'")
    assert 'href="/playground/"' in html
    slugs = {lesson.slug for lesson in course_snapshot().lessons}
    linked = re.findall(r'<ul class="decide-lessons">(.*?)</ul>', html, re.S)[0]
    for slug in recommendation.lessons:
        assert (f'href="{reverse("course:lesson", kwargs={"slug": slug})}"' in linked) == (
            slug in slugs
        )


@pytest.mark.django_db
def test_walking_with_forms_reaches_the_shareable_url(client: Client) -> None:
    """Without JavaScript each answer is a GET form; the resulting URL is the state."""
    html = client.get(URL).content.decode()
    answers: dict[str, str] = {}
    for question, value in zip(QUESTIONS, ["yes", "yes", "session"], strict=True):
        assert f"Question {question.number} of 3" in html
        form = re.search(
            r'<form class="decide-question" method="get" action="([^"]+)"(.*?)</form>', html, re.S
        )
        assert form and form.group(1) == URL
        hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="(\w+)"', form.group(2)))
        assert hidden == answers
        assert f'name="{question.key}" value="{value}"' in form.group(2)
        answers[question.key] = value
        html = client.get(URL, {**hidden, question.key: value}).content.decode()
    assert "Recommendation: Stateless workers, sessions in Redis with a TTL" in html
    shared = client.get(f"{URL}?external=yes&scale=yes&temporary=session").content.decode()
    assert _tree(shared) == _tree(html)


@pytest.mark.django_db
def test_htmx_gets_only_the_tree_and_the_page_varies_on_it(client: Client) -> None:
    response = client.get(f"{URL}?external=no", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="decide"')
    assert "<html" not in html
    assert "Question 2 of 3" in html
    assert "HX-Request" in response["Vary"]
    # The "path so far" shows the first answer, with a link back to change it.
    assert "No, it must stay in the process" in html
    assert f'href="{URL}"' in html
    # A history restore after a cache miss needs the whole page.
    restore = client.get(
        f"{URL}?external=no",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["external=maybe", "scale=yes", "external=yes&external=no", "external=%00%ff"]
)
def test_bad_parameters_never_fail_the_page(client: Client, query: str) -> None:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "start over" in html
    assert "Question 1 of 3" in html
    assert "<script>" not in _tree(html)


@pytest.mark.django_db
def test_user_input_in_the_message_is_escaped(client: Client) -> None:
    html = client.get(URL, {"external": "<b>x</b>"}).content.decode()
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def _tree(html: str) -> str:
    start = html.index('<div id="decide"')
    return html[start : html.index("</article>", start)]


def test_the_third_answer_reads_differently_on_the_stateful_branch() -> None:
    external = decision_make(
        params=params({"external": "yes", "scale": "no", "temporary": "session"})
    )
    stateful = decision_make(
        params=params({"external": "no", "scale": "no", "temporary": "session"})
    )
    assert "Redis" in external.steps[2].consequence
    assert "Redis" not in stateful.steps[2].consequence
    assert "reconnect" in stateful.steps[2].consequence
