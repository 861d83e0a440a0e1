"""Small helpers shared by the course's views."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from course.lessons import ContentError, Lesson, LessonNotFound, lesson_get, lesson_list


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_partial(request: HtmxHttpRequest) -> bool:
    """An htmx swap wants the fragment; a history restore after a cache miss wants the page."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    if htmx is None or not htmx:
        return False
    return not htmx.boosted and not htmx.history_restore_request


def lesson_or_404(slug: str) -> Lesson:
    try:
        return lesson_get(slug=slug)
    except (LessonNotFound, ContentError) as exc:
        raise Http404("No such lesson") from exc


def lessons_rendered() -> list[Lesson]:
    """Every servable lesson with its HTML and quizzes, in course order (renders are cached
    by file hash in course.lessons, so this costs file reads, not Markdown runs)."""
    lessons = []
    for summary in lesson_list():
        try:
            lessons.append(lesson_get(slug=summary.slug))
        except (LessonNotFound, ContentError):
            continue  # removed or broken since it was listed: leave it out
    return lessons
