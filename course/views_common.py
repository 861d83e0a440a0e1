"""Small helpers shared by the course's views."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from course.lessons import ContentError, Lesson, LessonNotFound
from course.snapshot import course_snapshot


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
        return course_snapshot().lesson_get(slug=slug)
    except (LessonNotFound, ContentError) as exc:
        raise Http404("No such lesson") from exc
