"""Quizzes as a page shows them to one request: the parts of a lesson's HTML with its
quizzes between them, and the one-shot answer shown after a no-JavaScript POST.

Rendering is templates/course/quiz.html's partials, with the real request; only a quiz's
question and choices, which are content, come rendered with the course snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from course.markdown import RenderedMarkdown
from course.quiz import Quiz, QuizResult, QuizSlot, quiz_check

# Session key of the answer shown once after a no-JavaScript POST (post/redirect/get).
FLASH_KEY = "quiz_flash"


@dataclass(frozen=True)
class PagePart:
    html: SafeString  # a piece of the lesson's sanitized HTML
    slot: QuizSlot | None  # the quiz that follows it (None after the last piece)
    result: QuizResult | None = None  # its answer, shown once after a no-JavaScript POST
    action: str = ""  # where the quiz's form posts
    choices_html: SafeString = SafeString("")  # its question and choices, unanswered

    @property
    def checked(self) -> frozenset[int]:
        return frozenset(c.number for c in self.result.selected) if self.result else frozenset()


def quiz_choices_html(*, quiz: Quiz) -> SafeString:
    """A quiz's question and choices with none checked: content only, no request."""
    return mark_safe(render_to_string("course/quiz.html#choices", {"quiz": quiz}))  # noqa: S308


def page_parts(
    *,
    rendered: RenderedMarkdown,
    slug: str,
    flash: dict[str, Any] | None,
    choices: Mapping[str, SafeString] | None = None,
) -> list[PagePart]:
    """The page's pieces; `choices` is the snapshot's quiz_choices_html of each quiz by id
    (made here when not given: the author preview of a file that is not a lesson yet)."""
    slots: list[QuizSlot | None] = [*rendered.quizzes, None]
    parts = []
    for html, slot in zip(rendered.parts, slots, strict=True):
        result = None
        quiz = slot.quiz if slot is not None else None
        if flash is not None and quiz is not None and flash.get("quiz") == quiz.id:
            result = quiz_check(quiz=quiz, selected=flash.get("selected") or [])
        # The one place where a lesson's HTML enters a page: sanitized by course.markdown.
        part = PagePart(html=mark_safe(html), slot=slot, result=result)  # noqa: S308
        if quiz is not None:
            done = choices.get(quiz.id) if choices is not None else None
            part = replace(
                part,
                action=reverse("course:quiz_answer", args=[slug, quiz.id]),
                choices_html=done if done is not None else quiz_choices_html(quiz=quiz),
            )
        parts.append(part)
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
