"""Quizzes as a page shows them to one request: the parts of a lesson's HTML with its
quizzes between them, each with the learner's last answer and its feedback, if any.

Rendering is templates/course/quiz.html's partials. What is content (a quiz's form around
the request's CSRF field) is rendered once per quiz with the course snapshot
(quiz_form_build); what depends on the request is rendered per page, with the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from course.experiment import ExperimentSlot
from course.markdown import RenderedMarkdown
from course.quiz import Quiz, QuizResult, QuizSlot, quiz_check


@dataclass(frozen=True)
class QuizForm:
    """A quiz's form, unanswered, in two pieces: the request's CSRF field goes between."""

    open: SafeString
    body: SafeString


@dataclass(frozen=True)
class PagePart:
    html: SafeString  # a piece of the lesson's sanitized HTML
    slot: QuizSlot | None = None  # the quiz that follows it (None after the last piece)
    experiment: ExperimentSlot | None = None  # or the experiment that follows it
    form: QuizForm | None = None  # its form, when it has a quiz
    result: QuizResult | None = None  # the learner's last answer to it, checked


def quiz_form_build(*, slug: str, quiz: Quiz) -> QuizForm:
    """The form of a quiz of lesson `slug`, rendered with no request (content only)."""
    context = {"quiz": quiz, "action": reverse("course:quiz_answer", args=[slug, quiz.id])}
    # Rendered by the template engine, which escapes: safe to put in a page as it is.
    return QuizForm(
        open=mark_safe(render_to_string("course/quiz.html#open", context)),
        body=mark_safe(render_to_string("course/quiz.html#body", context)),
    )


def page_parts(
    *,
    rendered: RenderedMarkdown,
    slug: str,
    answers: Mapping[str, list[int]],
    forms: Mapping[str, QuizForm] | None = None,
) -> list[PagePart]:
    """The page's pieces; `answers` is the learner's last answer to each quiz by id
    (course.progress), `forms` the snapshot's quiz_form_build of each quiz by id (built
    here when not given: the author preview of a file that is not a lesson yet)."""
    slots: list[QuizSlot | ExperimentSlot | None] = [*rendered.slots, None]
    parts = []
    for html, slot in zip(rendered.parts, slots, strict=True):
        # The one place where a lesson's HTML enters a page: sanitized by course.markdown.
        safe = mark_safe(html)
        if isinstance(slot, ExperimentSlot):
            parts.append(PagePart(html=safe, experiment=slot))
            continue
        quiz = slot.quiz if slot is not None else None
        if quiz is None:
            parts.append(PagePart(html=safe, slot=slot))
            continue
        form = forms.get(quiz.id) if forms is not None else None
        selected = answers.get(quiz.id)
        result = quiz_check(quiz=quiz, selected=selected) if selected else None
        form = form or quiz_form_build(slug=slug, quiz=quiz)
        parts.append(PagePart(html=safe, slot=slot, form=form, result=result))
    return parts
