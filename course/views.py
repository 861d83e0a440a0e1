"""The course's own pages: the home page and the lessons. Thin: course.lessons does the work."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.http import Http404, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template import Context, Engine, Template
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from course.lessons import (
    ContentError,
    Lesson,
    LessonNotFound,
    LessonSummary,
    lesson_get,
    lesson_get_all,
    lesson_index,
    lesson_list,
    lesson_neighbours,
)
from course.markdown import RenderedMarkdown
from course.progress import progress_mark_read, progress_summary
from course.quiz import CSRF_SLOT, render_slots
from course.views_common import HtmxHttpRequest

# Mermaid puts a <style> inside each SVG it draws; only pages that can show a diagram
# allow inline styles. script-src is never relaxed.
DIAGRAM_STYLES = {"style-src": [UNSAFE_INLINE]}
# Sent by static/js/site.js on htmx requests from a document whose CSP allows those styles.
# A boosted swap keeps the CSP of the document it lands in, not the response's.
INLINE_STYLES_HEADER = "X-Inline-Styles"


@require_GET
# Its links are boosted into lessons with diagrams. (django-csp types a view's request as a
# plain HttpRequest, hence the ignores.)
@csp_update(DIAGRAM_STYLES)  # type: ignore[arg-type]
def home(request: HtmxHttpRequest) -> HttpResponse:
    index = lesson_index()
    context = {
        "lessons": index.lessons,
        "total_minutes": sum(lesson.minutes for lesson in index.lessons),
        "content_errors": [_error_context(e) for e in index.errors] if _is_staff(request) else [],
        "diagram_styles": True,
        "progress": progress_summary(session=request.session, lessons=lesson_get_all()),
    }
    return render(request, "course/home.html", context)


@require_GET
@vary_on_headers("HX-Boosted", INLINE_STYLES_HEADER)
def lesson(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    try:
        lesson = lesson_get(slug=slug)
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
    return page(request, lesson)


def _lesson_page(request: HtmxHttpRequest, lesson: Lesson) -> HttpResponse:
    lessons = lesson_list()
    previous, following = lesson_neighbours(slug=lesson.slug, lessons=lessons)
    slugs = [summary.slug for summary in lessons]
    page = _lesson_page_html(
        template=Engine.get_default().get_template("course/lesson.html"),
        path=request.path,
        lesson=lesson,
        rendered=lesson.rendered,
        number=slugs.index(lesson.slug) + 1 if lesson.slug in slugs else None,
        previous=previous,
        following=following,
        staff_path=_display_path(lesson.path) if _is_staff(request) else None,
    )
    # What is this request's own goes in here: its CSRF token (one for the whole page, as
    # one render gives) and the quiz slots (a flash answer, a staff-only box).
    token = get_token(request)
    html = render_slots(html=page, lesson=lesson, request=request, csrf_token=token)
    progress_mark_read(session=request.session, slug=lesson.slug)
    return HttpResponse(html.replace(CSRF_SLOT, token))


# The arguments are the whole key: a new version of the file, a change of its place in the
# course, or a template reloaded by Django is a new entry. `rendered` is one because a
# Lesson compares without it.
@lru_cache(maxsize=128)
def _lesson_page_html(
    *,
    template: Template,
    path: str,
    lesson: Lesson,
    rendered: RenderedMarkdown,
    number: int | None,
    previous: LessonSummary | None,
    following: LessonSummary | None,
    staff_path: str | None,
) -> str:
    """A lesson's page with its quiz slots empty and CSRF_SLOT for the token, rendered once.

    The context holds these arguments and nothing else (no RequestContext, so no user,
    session or messages): nothing of one learner's can be cached and shown to another.
    """
    context = {
        "lesson": lesson,
        # The one place where a lesson's HTML enters the page (sanitized by course.markdown).
        "html": mark_safe(rendered.html),  # noqa: S308
        "number": number,
        "previous": previous,
        "next": following,
        "staff_path": staff_path,
        "diagram_styles": rendered.has_diagram,
        "request": SimpleNamespace(path=path),  # the site's nav reads request.path only
        "csrf_token": CSRF_SLOT,
    }
    return template.render(Context(context))


_lesson_page_with_diagrams: Callable[[HtmxHttpRequest, Lesson], HttpResponse] = csp_update(
    DIAGRAM_STYLES
)(_lesson_page)  # type: ignore[arg-type, assignment]


def _is_staff(request: HtmxHttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False))


def _error_context(error: ContentError) -> dict[str, object]:
    return {"path": _display_path(error.path), "line": error.line, "message": error.message}


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR)))
    except ValueError:
        return str(path)
