"""Quizzes as a page shows them to one request: the parts of a lesson's HTML with its
quizzes between them, and the one-shot answer shown after a no-JavaScript POST.

Rendering is templates/course/quiz.html's partials, with the real request.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from course.markdown import RenderedMarkdown
from course.quiz import QuizResult, QuizSlot, quiz_check

# Session key of the answer shown once after a no-JavaScript POST (post/redirect/get).
FLASH_KEY = "quiz_flash"


@dataclass(frozen=True)
class PagePart:
    html: SafeString  # a piece of the lesson's sanitized HTML
    slot: QuizSlot | None  # the quiz that follows it (None after the last piece)
    result: QuizResult | None = None  # its answer, shown once after a no-JavaScript POST
    action: str = ""  # where the quiz's form posts

    @property
    def checked(self) -> frozenset[int]:
        return frozenset(c.number for c in self.result.selected) if self.result else frozenset()


def page_parts(
    *, rendered: RenderedMarkdown, slug: str, flash: dict[str, Any] | None
) -> list[PagePart]:
    slots: list[QuizSlot | None] = [*rendered.quizzes, None]
    parts = []
    for html, slot in zip(rendered.parts, slots, strict=True):
        result = None
        quiz = slot.quiz if slot is not None else None
        if flash is not None and quiz is not None and flash.get("quiz") == quiz.id:
            result = quiz_check(quiz=quiz, selected=flash.get("selected") or [])
        # The one place where a lesson's HTML enters a page: sanitized by course.markdown.
        action = reverse("course:quiz_answer", args=[slug, quiz.id]) if quiz else ""
        parts.append(PagePart(html=mark_safe(html), slot=slot, result=result, action=action))  # noqa: S308
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
