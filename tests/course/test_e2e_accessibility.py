"""axe-core in Chromium: no serious or critical violation on the course's pages, in the
light and the dark theme."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from course.snapshot import course_snapshot
from tests.conftest import ROOT, axe_serious

pytestmark = pytest.mark.e2e

DRAW_TIMEOUT = 30_000  # ms: the first Mermaid run parses a 3.5 MB script


def _pages() -> list[str]:
    lessons = course_snapshot().lessons
    with_diagram = next(lesson for lesson in lessons if lesson.has_diagram)
    with_quizzes = next(lesson for lesson in lessons if len(lesson.quiz_ids) >= 2)
    with_experiments = next(lesson for lesson in lessons if len(lesson.rendered.experiments) >= 2)
    return [
        "/",
        f"/lessons/{with_diagram.slug}/",
        f"/lessons/{with_quizzes.slug}/",
        f"/lessons/{with_experiments.slug}/",
        "/decide/",
        "/search/?q=sticky",
        "/playground/",
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_course_pages_have_no_serious_accessibility_violations(
    audit_page, live_server_url: str, theme: str
) -> None:
    page = audit_page
    page.emulate_media(color_scheme=theme)
    found = {}
    for path in _pages():
        page.goto(f"{live_server_url}{path}")
        drawn = page.locator("pre.mermaid").count()
        if drawn:
            page.wait_for_function(
                f"document.querySelectorAll('pre.mermaid[aria-label]').length === {drawn}",
                timeout=DRAW_TIMEOUT,
            )
        if page.locator(".quiz").count():
            # An answered quiz too: its verdict and feedback have colours of their own.
            quiz = page.locator(".quiz").first
            quiz.locator('input[name="choice"]').first.check()
            quiz.get_by_role("button", name="Check").click()
            quiz.locator(".quiz-verdict").wait_for()
        found[path] = axe_serious(page)
    assert {path: v for path, v in found.items() if v} == {}


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_instructor_dashboard_has_no_serious_accessibility_violations(
    audit_page, live_server_url: str, server_env: dict[str, str], theme: str
) -> None:
    username, password = f"teacher-{uuid.uuid4().hex[:8]}", "pw-teacher-1"
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username,
         "--email", f"{username}@example.com"],
        cwd=ROOT, env={**server_env, "DJANGO_SUPERUSER_PASSWORD": password}, check=True,
    )  # fmt: skip
    page = audit_page
    page.emulate_media(color_scheme=theme)
    page.goto(f"{live_server_url}/admin/login/?next=/instructor/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Instructor dashboard").wait_for()
    assert page.locator("caption").count() == 3
    assert axe_serious(page) == []
