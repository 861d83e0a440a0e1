"""The /search/ page: live results while typing, plain GET form without JavaScript."""

from __future__ import annotations

from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from course.search import MAX_QUERY_LENGTH, search_run
from course.snapshot import course_snapshot
from course.views_common import HtmxHttpRequest, wants_partial


@require_safe
@vary_on_headers("HX-Request")
def search(request: HtmxHttpRequest) -> HttpResponse:
    result = search_run(query=request.GET.get("q", ""), index=course_snapshot().search_index)
    context = {"result": result, "max_length": MAX_QUERY_LENGTH}
    template = "course/search.html#results" if wants_partial(request) else "course/search.html"
    return TemplateResponse(request, template, context)
