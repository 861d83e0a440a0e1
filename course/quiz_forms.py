"""Quizzes as a page shows them to one request: the parts of a lesson's HTML with its
quizzes between them, and the one-shot answer shown after a no-JavaScript POST.

Rendering is templates/course/quiz.html's partials. What is content (a quiz's form around
the request's CSRF field) is rendered once per quiz with the course snapshot
(quiz_form_build); what depends on the request is rendered per page, with the request.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from course.markdown import RenderedMarkdown
from course.quiz import Quiz, QuizResult, QuizSlot, quiz_check

# Session key of the answer shown once after a no-JavaScript POST (post/redirect/get).
FLASH_KEY = "quiz_flash"


@dataclass(frozen=True)
class QuizForm:
    """A quiz's form, unanswered, in two pieces: the request's CSRF field goes between."""

    open: SafeString
    body: SafeString


@dataclass(frozen=True)
class PagePart:
    html: SafeString  # a piece of the lesson's sanitized HTML
    slot: QuizSlot | None = None  # the quiz that follows it (None after the last piece)
    form: QuizForm | None = None  # its form, when it has a quiz
    result: QuizResult | None = None  # its answer, shown once after a no-JavaScript POST


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
    flash: dict[str, Any] | None,
    forms: Mapping[str, QuizForm] | None = None,
) -> list[PagePart]:
    """The page's pieces; `forms` is the snapshot's quiz_form_build of each quiz by id
    (built here when not given: the author preview of a file that is not a lesson yet)."""
    slots: list[QuizSlot | None] = [*rendered.quizzes, None]
    parts = []
    for html, slot in zip(rendered.parts, slots, strict=True):
        # The one place where a lesson's HTML enters a page: sanitized by course.markdown.
        safe = mark_safe(html)
        quiz = slot.quiz if slot is not None else None
        if quiz is None:
            parts.append(PagePart(html=safe, slot=slot))
            continue
        form = forms.get(quiz.id) if forms is not None else None
        result = None
        if flash is not None and flash.get("quiz") == quiz.id:
            result = quiz_check(quiz=quiz, selected=flash.get("selected") or [])
        form = form or quiz_form_build(slug=slug, quiz=quiz)
        parts.append(PagePart(html=safe, slot=slot, form=form, result=result))
    return parts


def flash_set(
    *, session: MutableMapping[str, Any], slug: str, quiz_id: str, selected: list[int]
) -> None:
    session[FLASH_KEY] = {"slug": slug, "quiz": quiz_id, "selected": selected}


def flash_pop(*, session: MutableMapping[str, Any], slug: str) -> dict[str, Any] | None:
    flash = session.get(FLASH_KEY)
    if not isinstance(flash, dict) or flash.get("slug") != slug:
        return None
    del session[FLASH_KEY]
    return flash
