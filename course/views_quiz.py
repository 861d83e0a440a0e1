"""The learner's POSTs: answering a quiz, reaching a lesson's end, resetting progress.

An htmx answer gets the quiz's feedback partial back; a plain form POST is redirected to
the lesson at the quiz's anchor. Either way the answer is kept in the learner's progress,
and the lesson shows it, with its feedback, whenever it is opened again.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from course.progress import progress_mark_read, progress_record_answer, progress_reset
from course.quiz import quiz_check
from course.records import quiz_answer_record, reading_finished
from course.views_common import HtmxHttpRequest, lesson_or_404

MAX_CHOICES_POSTED = 10


def _selected(request: HtmxHttpRequest) -> list[int]:
    numbers: list[int] = []
    for raw in request.POST.getlist("choice")[:MAX_CHOICES_POSTED]:
        if raw.isdigit() and len(raw) <= 2 and int(raw) not in numbers:
            numbers.append(int(raw))
    return numbers


@require_POST
def quiz_answer(request: HtmxHttpRequest, slug: str, quiz_id: str) -> HttpResponse:
    lesson = lesson_or_404(slug)
    quiz = lesson.quiz(quiz_id)
    if quiz is None:
        raise Http404("No such quiz")
    result = quiz_check(quiz=quiz, selected=_selected(request))
    if result.selected:
        chosen = [c.number for c in result.selected]
        progress_record_answer(
            session=request.session,
            slug=lesson.slug,
            quiz_id=quiz.id,
            correct=result.correct,
            selected=chosen,
        )
        quiz_answer_record(
            session=request.session,
            slug=lesson.slug,
            quiz_id=quiz.id,
            correct=result.correct,
            choices=chosen,
        )
    if request.htmx:
        return render(request, "course/quiz.html#feedback", {"result": result})
    url = reverse("course:lesson", kwargs={"slug": lesson.slug})
    return HttpResponseRedirect(f"{url}#quiz-{quiz.id}", status=303)


@require_POST
def lesson_read(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """The end of a lesson was reached (htmx posts this when it scrolls into view; without
    JavaScript the learner presses the button there)."""
    lesson = lesson_or_404(slug)
    progress_mark_read(session=request.session, slug=lesson.slug)
    reading_finished(session=request.session, slug=lesson.slug)
    if request.htmx:
        return render(request, "course/lesson.html#read", {"lesson": lesson, "read": True})
    url = reverse("course:lesson", kwargs={"slug": lesson.slug})
    return HttpResponseRedirect(f"{url}#lesson-end", status=303)


@require_POST
def progress_reset_view(request: HtmxHttpRequest) -> HttpResponse:
    progress_reset(session=request.session)
    return HttpResponseRedirect(reverse("course:home"), status=303)
