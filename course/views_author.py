"""Instructors' pages: /author/preview/ renders Markdown as learners will see it;
/instructor/ shows what learners answer, predict and read (course.stats has the figures).

Staff only (Django auth); anyone else is sent to the admin login.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from course.author import MAX_PREVIEW_BYTES, preview_build, preview_slug
from course.quiz_forms import page_parts
from course.snapshot import course_snapshot
from course.stats import MIN_FOR_DISCRIMINATION, dashboard_load
from course.views_common import HtmxHttpRequest, wants_partial


def _context(*, text: str, slug: str) -> dict[str, object]:
    preview = preview_build(text=text, slug=slug)
    return {
        "lessons": course_snapshot().lessons,
        "slug": preview.slug,
        "text": text,
        "preview": preview,
        "parts": page_parts(rendered=preview.rendered, slug=preview.slug, answers={})
        if preview.rendered
        else [],
        "staff": True,
        "lesson_file": preview.file,
        "max_kb": MAX_PREVIEW_BYTES // 1024,
    }


@require_safe
@staff_member_required
def author_preview(request: HtmxHttpRequest) -> HttpResponse:
    slug = request.GET.get("lesson", "")
    text = ""
    if slug and slug == preview_slug(slug):
        # Read the file itself: a lesson that fails to parse can be loaded and fixed here.
        path = Path(settings.CONTENT_DIR) / f"{slug}.md"
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
    return TemplateResponse(request, "course/author.html", _context(text=text, slug=slug))


@require_POST
@vary_on_headers("HX-Request")
@staff_member_required
def author_preview_render(request: HtmxHttpRequest) -> HttpResponse:
    context = _context(text=request.POST.get("text", ""), slug=request.POST.get("lesson", ""))
    template = "course/author.html#preview" if wants_partial(request) else "course/author.html"
    return TemplateResponse(request, template, context)


@require_safe
@staff_member_required
def instructor_dashboard(request: HtmxHttpRequest) -> HttpResponse:
    dashboard = dashboard_load(lessons=course_snapshot().lessons)
    context = {"dashboard": dashboard, "minimum": MIN_FOR_DISCRIMINATION}
    return TemplateResponse(request, "course/instructor.html", context)
