"""The /decide/ page: the interview framework walked one question at a time."""

from __future__ import annotations

from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from course.decide import QUESTION_KEYS, QUESTIONS, decision_make, lessons_linked
from course.snapshot import course_snapshot
from course.views_common import HtmxHttpRequest, wants_partial


@require_safe
@vary_on_headers("HX-Request")
def decide(request: HtmxHttpRequest) -> HttpResponse:
    decision = decision_make(params={key: request.GET.getlist(key) for key in QUESTION_KEYS})
    lessons = {lesson.slug: lesson for lesson in course_snapshot().lessons}
    linked = []
    if decision.recommendation is not None:
        linked = [
            lessons[slug]
            for slug in lessons_linked(decision.recommendation, exists=lessons.__contains__)
        ]
    context = {
        "decision": decision,
        "question_count": len(QUESTIONS),
        "lessons_linked": linked,
    }
    template = "course/decide.html#tree" if wants_partial(request) else "course/decide.html"
    return TemplateResponse(request, template, context)
