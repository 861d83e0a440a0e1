"""Browser tests of active learning: quizzes, the decision tree, progress, live search.

Real Chromium against a real daphne (fixtures in tests/conftest.py): these prove the htmx
attributes actually work, which the Django test client cannot.
"""

from __future__ import annotations

import re

import pytest

from course.snapshot import course_snapshot

pytestmark = pytest.mark.e2e


def _single_choice_quiz():
    for lesson in course_snapshot().lessons:
        for slot in lesson.quizzes:
            quiz = slot.quiz
            if quiz is not None and not quiz.multiple:
                return lesson, quiz
    raise AssertionError("no single-choice quiz in the course")


def test_answer_a_quiz_wrongly_then_rightly(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    lesson, quiz = _single_choice_quiz()
    wrong = next(c for c in quiz.choices if not c.correct)
    right = next(c for c in quiz.choices if c.correct)
    page.goto(f"{live_server_url}/lessons/{lesson.slug}/")
    section = page.locator(f"#quiz-{quiz.id}")
    feedback = section.locator(".quiz-feedback")
    url_before = page.url

    section.locator(f'input[name="choice"][value="{wrong.number}"]').check()
    section.get_by_role("button", name="Check").click()
    expect(feedback).to_contain_text("Not quite")
    expect(feedback).to_contain_text(_words(wrong.feedback))

    section.locator(f'input[name="choice"][value="{right.number}"]').check()
    section.get_by_role("button", name="Check").click()
    expect(feedback).to_contain_text("Correct!")
    expect(feedback).to_contain_text(_words(right.feedback))
    expect(feedback).not_to_contain_text(_words(wrong.feedback))
    assert page.url == url_before  # answered in place, no page load


def test_walk_the_decision_tree_to_a_recommendation(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server_url}/decide/")
    page.get_by_role("button", name="Yes, it can live in an external store").click()
    expect(page.locator(".decide-path")).to_contain_text("Yes, it can live in an external store")
    expect(page).to_have_url(re.compile(r"/decide/\?external=yes$"))
    page.get_by_role("button", name="Yes, many interchangeable workers").click()
    expect(page).to_have_url(re.compile(r"/decide/\?external=yes&scale=yes$"))
    page.get_by_role("button", name="Temporary: session data").click()
    recommendation = page.locator(".decide-recommendation")
    expect(recommendation).to_contain_text("Stateless workers, sessions in Redis with a TTL")
    expect(page).to_have_url(re.compile(r"/decide/\?external=yes&scale=yes&temporary=session$"))
    expect(recommendation.get_by_role("link", name="Open the playground")).to_have_attribute(
        "href", "/playground/"
    )
    # The pushed URL is a real page: loading it shows the same recommendation.
    page.reload()
    expect(page.locator(".decide-recommendation")).to_contain_text("sessions in Redis")
    # Back goes one answer back.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/decide/\?external=yes&scale=yes$"))
    expect(page.locator(".decide-question")).to_contain_text("Is the state temporary?")


def test_a_progress_bar_moves_after_reading_a_lesson(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    lesson = course_snapshot().lessons[-1]
    page.goto(f"{live_server_url}/")
    overall = page.locator("#progress-overall")
    before = int(overall.get_attribute("value") or "0")
    row = page.locator(f'.progress-lesson[data-slug="{lesson.slug}"]')
    expect(row).to_contain_text("not read yet")

    page.goto(f"{live_server_url}/lessons/{lesson.slug}/")
    page.goto(f"{live_server_url}/")
    expect(row).to_contain_text("not read yet")  # opened is not read
    page.goto(f"{live_server_url}/lessons/{lesson.slug}/")
    page.locator(".pager").scroll_into_view_if_needed()  # the end of the lesson
    expect(page.locator("#lesson-end")).to_contain_text("You have read this lesson")
    page.goto(f"{live_server_url}/")
    expect(row).to_contain_text("✓ read")
    assert int(overall.get_attribute("value") or "0") > before


def test_search_results_appear_while_typing(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server_url}/search/")
    box = page.get_by_label("Search the lessons")
    box.press_sequentially("stick", delay=30)
    results = page.locator("#search-results")
    expect(results.locator("mark").first).to_have_text(re.compile("sticky", re.I))
    expect(results.locator(".search-hit").first).to_contain_text("Stateful up close")
    expect(page).to_have_url(re.compile(r"/search/\?q=stick$"))


def _words(markdown_text: str) -> str:
    """The first words of a feedback's Markdown, as the browser shows them."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)|[`*_]", r"\1", markdown_text)
    return " ".join(plain.split()[:6])
