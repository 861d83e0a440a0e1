"""Browser tests of the course pages: boosted navigation, dark mode, Mermaid under the CSP.

Real Chromium against a real daphne (fixtures in tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from course.snapshot import course_snapshot
from tests.conftest import start_daphne, stop_process
from tests.course.conftest import lesson_text

pytestmark = pytest.mark.e2e

DRAW_TIMEOUT = 30_000  # ms: the first Mermaid run parses a 3.5 MB script on a small machine
NODE_FILL = """() => {
  const shape = document.querySelector("pre.mermaid svg .node rect, pre.mermaid svg .node polygon");
  return shape ? getComputedStyle(shape).fill : null;
}"""
# Set when <body> first exists: proves the theme is applied before anything is painted.
THEME_AT_FIRST_PAINT = """
new MutationObserver((_, observer) => {
  if (document.body) {
    window.themeAtBody = document.documentElement.dataset.theme || "system";
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
UNSTYLED = ("rgb(0, 0, 0)", "", None)  # SVG's default fill: Mermaid's <style> was refused


def csp_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def note(message):  # type: ignore[no-untyped-def]
        if "Content Security Policy" in message.text:
            seen.append(message.text)

    page.on("console", note)
    return seen


def first_lesson_with_a_diagram() -> str:
    return next(s.slug for s in course_snapshot().lessons if s.has_diagram)


def test_boosted_link_from_home_swaps_in_the_lesson(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    violations = csp_violations(page)
    first = course_snapshot().lessons[0]
    page.goto(f"{live_server_url}/")
    page.evaluate("window.sameDocument = true")
    with page.expect_request(re.compile(rf"/lessons/{first.slug}/$")) as request:
        page.locator(".lesson-card__title a").first.click()

    expect(page).to_have_url(f"{live_server_url}/lessons/{first.slug}/")
    expect(page.locator("h1")).to_have_text(first.title)
    expect(page).to_have_title(re.compile(re.escape(first.title)))
    assert request.value.all_headers().get("hx-boosted") == "true"
    assert page.evaluate("window.sameDocument") is True  # swapped by htmx, not a page load
    if first.has_diagram:
        expect(page.locator("pre.mermaid svg").first).to_be_visible(timeout=DRAW_TIMEOUT)
        assert page.evaluate(NODE_FILL) not in UNSTYLED
    assert violations == []


def test_dark_mode_toggle_applies_at_once_and_is_remembered(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    page.emulate_media(color_scheme="light")
    page.add_init_script(THEME_AT_FIRST_PAINT)
    page.goto(f"{live_server_url}/")
    root, toggle = page.locator("html"), page.get_by_role("button", name="Dark mode")
    background = "() => getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    expect(toggle).to_have_attribute("aria-pressed", "false")

    toggle.click()
    expect(root).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    dark = page.evaluate(background)
    assert dark != light

    page.reload()
    expect(root).to_have_attribute("data-theme", "dark")
    assert page.evaluate("window.themeAtBody") == "dark"  # set before the first paint
    assert page.evaluate(background) == dark
    expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "true")

    page.get_by_role("button", name="Dark mode").click()
    page.reload()
    expect(root).to_have_attribute("data-theme", "light")
    assert page.evaluate(background) == light


def test_mermaid_draws_an_svg_under_the_csp_and_follows_the_theme(
    page, live_server_url: str
) -> None:
    from playwright.sync_api import expect

    violations = csp_violations(page)
    page.emulate_media(color_scheme="light")
    page.goto(f"{live_server_url}/lessons/{first_lesson_with_a_diagram()}/")
    expect(page.locator("pre.mermaid svg").first).to_be_visible(timeout=DRAW_TIMEOUT)
    light_fill = page.evaluate(NODE_FILL)
    assert light_fill not in UNSTYLED  # Mermaid's inline <style> was allowed

    page.get_by_role("button", name="Dark mode").click()
    page.wait_for_function(
        f"({NODE_FILL})() !== {light_fill!r} && ({NODE_FILL})() !== null",
        timeout=DRAW_TIMEOUT,
    )
    assert page.evaluate(NODE_FILL) not in UNSTYLED
    assert violations == []


@pytest.fixture(scope="module")
def small_course_url(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A live server whose course has a lesson without diagrams before one with a diagram."""
    content: Path = tmp_path_factory.mktemp("content")
    (content / "plain.md").write_text(
        lesson_text(title="Plain lesson", order=1, body="## Words\n\nNo figures here.\n")
    )
    (content / "drawn.md").write_text(
        lesson_text(
            title="Drawn lesson",
            order=2,
            body="## Figure\n\n```mermaid\ngraph TD\n  A --> B\n```\n",
        )
    )
    process, url = start_daphne({**server_env, "CONTENT_DIR": str(content)})
    yield url
    stop_process(process)


def test_boost_from_a_strict_page_into_a_diagram_loads_the_page_for_real(
    page, small_course_url: str
) -> None:
    from playwright.sync_api import expect

    violations = csp_violations(page)
    page.goto(f"{small_course_url}/lessons/plain/")  # no diagram: the strict CSP
    page.evaluate("window.sameDocument = true")
    page.locator('a[rel="next"]').click()

    expect(page).to_have_url(f"{small_course_url}/lessons/drawn/")
    expect(page.locator("pre.mermaid svg")).to_be_visible(timeout=DRAW_TIMEOUT)
    assert page.evaluate("window.sameDocument") is None  # a real page load, with its own CSP
    assert page.evaluate(NODE_FILL) not in UNSTYLED
    assert violations == []


def test_the_table_of_contents_marks_the_section_being_read(page, live_server_url: str) -> None:
    from playwright.sync_api import expect

    lesson = course_snapshot().lessons[0]
    first, last = lesson.toc[0], lesson.toc[-1]
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server_url}/lessons/{lesson.slug}/")
    toc = page.locator(".lesson-toc")
    page.locator(f"#{first.id}").scroll_into_view_if_needed()
    page.evaluate(f"window.scrollTo(0, document.getElementById('{first.id}').offsetTop - 10)")
    expect(toc.locator(f'a[href="#{first.id}"]')).to_have_attribute("aria-current", "true")
    page.evaluate(f"window.scrollTo(0, document.getElementById('{last.id}').offsetTop - 10)")
    expect(toc.locator(f'a[href="#{last.id}"]')).to_have_attribute("aria-current", "true")
    assert toc.locator('a[aria-current="true"]').count() == 1


def test_on_a_phone_the_lesson_title_comes_before_its_contents(page, live_server_url: str) -> None:
    lesson = course_snapshot().lessons[0]
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server_url}/lessons/{lesson.slug}/")
    title = page.locator("h1").bounding_box()
    toc = page.locator(".lesson-toc").bounding_box()
    assert title is not None and toc is not None
    assert title["y"] < toc["y"]


# The smallest label of the page's diagrams, in CSS pixels as drawn, and whether each
# diagram has an accessible name.
DIAGRAM_FACTS = """() => Array.from(document.querySelectorAll('pre.mermaid')).map(box => {
  const svg = box.querySelector('svg');
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  const sizes = Array.from(svg.querySelectorAll('text, foreignObject div, foreignObject span'))
    .filter(el => el.textContent.trim())
    .map(el => parseFloat(getComputedStyle(el).fontSize) * scale);
  return {smallest: Math.min(...sizes), name: box.getAttribute('aria-label') || '',
          error: Boolean(svg.querySelector('.error-text'))};
})"""


@pytest.mark.parametrize("width", [1280, 390])
def test_diagrams_are_legible_and_named(page, live_server_url: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    for lesson in [s for s in course_snapshot().lessons if s.has_diagram]:
        page.goto(f"{live_server_url}/lessons/{lesson.slug}/")
        count = page.locator("pre.mermaid").count()
        page.wait_for_function(
            f"document.querySelectorAll('pre.mermaid svg').length === {count}",
            timeout=DRAW_TIMEOUT,
        )
        for facts in page.evaluate(DIAGRAM_FACTS):
            assert not facts["error"], (lesson.slug, "Mermaid could not parse a diagram")
            assert facts["smallest"] >= 11.9, (lesson.slug, width, facts)
            assert facts["name"].startswith("Diagram: "), (lesson.slug, facts)
            assert facts["name"] != "Diagram: see the text", (lesson.slug, "no accTitle")
