"""The course's own pages: the home page and the lessons. Thin: course.snapshot has the
content, and each page is rendered per request from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from course.lessons import ContentError, Lesson, LessonNotFound
from course.progress import (
    progress_answers,
    progress_has_read,
    progress_summary,
    progress_visit,
)
from course.quiz_forms import page_parts
from course.records import reading_opened
from course.snapshot import CourseSnapshot, course_snapshot
from course.views_common import HtmxHttpRequest

# Mermaid puts a <style> inside each SVG it draws; only pages that can show a diagram
# allow inline styles. script-src is never relaxed.
DIAGRAM_STYLES = {"style-src": [UNSAFE_INLINE]}
# Sent by static/js/site.js on htmx requests from a document whose CSP allows those styles.
# A boosted swap keeps the CSP of the document it lands in, not the response's.
INLINE_STYLES_HEADER = "X-Inline-Styles"


@require_safe
# Its links are boosted into lessons with diagrams. (django-csp types a view's request as a
# plain HttpRequest, hence the ignores.)
@csp_update(DIAGRAM_STYLES)  # type: ignore[arg-type]
def home(request: HtmxHttpRequest) -> HttpResponse:
    snapshot = course_snapshot()
    staff = _is_staff(request)
    progress = progress_summary(session=request.session, lessons=snapshot.lessons)
    context = {
        "lessons": snapshot.lessons,
        "total_minutes": sum(lesson.minutes for lesson in snapshot.lessons),
        "content_errors": [_error_context(e) for e in snapshot.errors] if staff else [],
        "diagram_styles": True,
        "progress": progress,
        # Each lesson's card shows its own progress: the page lists the lessons once.
        "cards": list(zip(snapshot.lessons, progress.lessons, strict=True)),
    }
    return render(request, "course/home.html", context)


@require_safe
@vary_on_headers("HX-Boosted", INLINE_STYLES_HEADER)
def lesson(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    snapshot = course_snapshot()
    try:
        lesson = snapshot.lesson_get(slug=slug)
    except LessonNotFound as exc:
        raise Http404("No such lesson") from exc
    except ContentError as exc:
        context = {"error": _error_context(exc) if _is_staff(request) else None}
        return render(request, "course/lesson_unavailable.html", context, status=404)
    if lesson.has_diagram and request.htmx.boosted and INLINE_STYLES_HEADER not in request.headers:
        # Swapped into a document under the strict CSP, the diagrams would lose their
        # styles: load the page for real instead, with the CSP that this page needs.
        return HttpResponseClientRedirect(request.get_full_path())
    page = _lesson_page_with_diagrams if lesson.has_diagram else _lesson_page
    return page(request, lesson, snapshot)


def _lesson_page(
    request: HtmxHttpRequest, lesson: Lesson, snapshot: CourseSnapshot
) -> HttpResponse:
    previous, following = snapshot.neighbours(slug=lesson.slug)
    staff = _is_staff(request)
    context = {
        "lesson": lesson,
        "slug": lesson.slug,
        "parts": page_parts(
            rendered=lesson.rendered,
            slug=lesson.slug,
            answers=progress_answers(session=request.session, slug=lesson.slug),
            forms=snapshot.quiz_forms[lesson.slug],
        ),
        "staff": staff,
        "read": progress_has_read(session=request.session, slug=lesson.slug),
        "number": snapshot.number(slug=lesson.slug),
        "previous": previous,
        "previous_url": snapshot.urls[previous.slug] if previous else "",
        "next": following,
        "next_url": snapshot.urls[following.slug] if following else "",
        "lesson_file": _display_path(lesson.path) if staff else "",  # shown to staff only
        "diagram_styles": lesson.has_diagram,
    }
    if progress_visit(session=request.session, slug=lesson.slug):
        reading_opened(session=request.session, slug=lesson.slug)
    return render(request, "course/lesson.html", context)


_lesson_page_with_diagrams: Callable[[HtmxHttpRequest, Lesson, CourseSnapshot], HttpResponse] = (
    csp_update(DIAGRAM_STYLES)(_lesson_page)  # type: ignore[arg-type, assignment]
)


def _is_staff(request: HtmxHttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False))


def _error_context(error: ContentError) -> dict[str, object]:
    return {"path": _display_path(error.path), "line": error.line, "message": error.message}


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR)))
    except ValueError:
        return str(path)
