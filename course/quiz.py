"""Quizzes inside lessons: parse and validate ```quiz blocks, render them, check answers.

Which choices are correct never leaves the server until the learner has answered:
rendered forms carry only choice numbers, and feedback comes back from a POST.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import markdown
import nh3
import yaml
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template import Engine, Template
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

QUIZ_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
QUIZ_KEYS = ("id", "question", "choices", "hint")
CHOICE_KEYS = ("text", "correct", "feedback")
MIN_CHOICES, MAX_CHOICES = 2, 5
# The placeholder course.markdown leaves where a ```quiz fence was.
SLOT_RE = re.compile(r'<div class="quiz-slot" data-quiz="(?P<id>[^"<>]*)"\s*>\s*</div>')
# Session key of the one-shot answer shown after a no-JavaScript POST (post/redirect/get).
FLASH_KEY = "quiz_flash"

_INLINE_TAGS = {"a", "code", "em", "strong", "b", "i", "kbd", "br"}


class QuizBlockLike(Protocol):
    """What course.markdown exposes for each ```quiz fence (its QuizBlock)."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def line(self) -> int: ...


@dataclass(frozen=True)
class Choice:
    number: int  # 1-based, the only thing about a choice that the form sends
    text: str
    correct: bool
    feedback: str


@dataclass(frozen=True)
class Quiz:
    id: str
    question: str
    choices: tuple[Choice, ...]
    hint: str = ""

    @property
    def multiple(self) -> bool:
        """Several correct choices: the form uses checkboxes, and all of them are needed."""
        return sum(c.correct for c in self.choices) > 1


@dataclass(frozen=True)
class QuizProblem:
    line: int  # 1-based line in the lesson file
    message: str

    def __str__(self) -> str:
        return f"{self.line}: {self.message}"


class QuizError(ValueError):
    def __init__(self, problems: Sequence[QuizProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class QuizResult:
    quiz: Quiz
    selected: tuple[Choice, ...]
    correct: bool
    # Only for several-correct quizzes: the selection was right as far as it went.
    missing_some: bool = False


# ---------------------------------------------------------------------------------------
# Parsing and validation


def _source_line(block: QuizBlockLike, node_line0: int) -> int:
    """File line of a 0-based line inside the block's source (line 1 of it follows the fence)."""
    return block.line + 1 + node_line0


def _mapping_items(node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    return list(node.value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_keys(
    block: QuizBlockLike,
    node: yaml.MappingNode,
    allowed: Sequence[str],
    where: str,
    problems: list[QuizProblem],
) -> None:
    seen: set[str] = set()
    for key_node, _ in _mapping_items(node):
        key = key_node.value
        line = _source_line(block, key_node.start_mark.line)
        if key not in allowed:
            problems.append(
                QuizProblem(line, f"{where}unknown key {key!r} (allowed: {', '.join(allowed)})")
            )
        elif key in seen:
            problems.append(QuizProblem(line, f"{where}key {key!r} appears twice"))
        seen.add(key)


def _value_node(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for key_node, value_node in _mapping_items(node):
        if key_node.value == key:
            return value_node
    return None


def _value_line(block: QuizBlockLike, node: yaml.MappingNode, key: str) -> int:
    """File line of the value under `key` (the fence's line if the key is absent)."""
    value = _value_node(node, key)
    return block.line if value is None else _source_line(block, value.start_mark.line)


def _key_line(block: QuizBlockLike, node: yaml.MappingNode, key: str) -> int:
    for key_node, _ in _mapping_items(node):
        if key_node.value == key:
            return _source_line(block, key_node.start_mark.line)
    return block.line


def quiz_parse(block: QuizBlockLike) -> Quiz:
    """Parse one ```quiz block; raise QuizError listing every problem with its file line."""
    return _quiz_parse_cached(block.id, block.source, block.line)


@dataclass(frozen=True)
class _Block:
    id: str
    source: str
    line: int


@lru_cache(maxsize=512)
def _quiz_parse_cached(block_id: str, source: str, line: int) -> Quiz:
    block = _Block(block_id, source, line)
    problems: list[QuizProblem] = []
    where_block = f"quiz {block_id!r}: " if block_id else "quiz: "
    try:
        loader = yaml.SafeLoader(source)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        problem_mark = getattr(exc, "problem_mark", None)
        context_mark = getattr(exc, "context_mark", None)
        mark = problem_mark or context_mark
        line_no = _source_line(block, mark.line) if mark is not None else block.line
        message = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if (
            context
            and context_mark is not None
            and context_mark.line != getattr(mark, "line", None)
        ):
            # e.g. an unclosed quote: the parser gives up at the end, the cause is earlier.
            message += f" ({context} that starts on line {_source_line(block, context_mark.line)})"
        raise QuizError([QuizProblem(line_no, f"{where_block}invalid YAML: {message}")]) from exc

    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise QuizError(
            [
                QuizProblem(
                    block.line,
                    f"{where_block}expected 'key: value' lines (id, question, choices, hint)",
                )
            ]
        )

    _check_keys(block, root, QUIZ_KEYS, where_block, problems)

    quiz_id = data.get("id")
    if quiz_id is None:
        problems.append(QuizProblem(block.line, f"{where_block}missing 'id'"))
    elif not isinstance(quiz_id, str) or not QUIZ_ID_RE.match(quiz_id):
        problems.append(
            QuizProblem(
                _value_line(block, root, "id"),
                f"{where_block}id {quiz_id!r} must be lowercase letters, digits and hyphens",
            )
        )

    question = data.get("question")
    if question is None:
        problems.append(QuizProblem(block.line, f"{where_block}missing 'question'"))
    elif not _is_text(question):
        problems.append(
            QuizProblem(
                _value_line(block, root, "question"),
                f"{where_block}'question' must be non-empty text",
            )
        )

    hint = data.get("hint", "")
    if "hint" in data and not _is_text(hint):
        problems.append(
            QuizProblem(
                _value_line(block, root, "hint"),
                f"{where_block}'hint' must be non-empty text (or leave it out)",
            )
        )

    choices: list[Choice] = []
    choices_node = _value_node(root, "choices")
    raw_choices = data.get("choices")
    if raw_choices is None or choices_node is None:
        problems.append(QuizProblem(block.line, f"{where_block}missing 'choices'"))
    elif not isinstance(choices_node, yaml.SequenceNode) or not isinstance(raw_choices, list):
        problems.append(
            QuizProblem(
                _key_line(block, root, "choices"),
                f"{where_block}'choices' must be a list of '- text: ...' items",
            )
        )
    else:
        choices_line = _key_line(block, root, "choices")
        if not MIN_CHOICES <= len(raw_choices) <= MAX_CHOICES:
            problems.append(
                QuizProblem(
                    choices_line,
                    f"{where_block}needs {MIN_CHOICES} to {MAX_CHOICES} choices, "
                    f"found {len(raw_choices)}",
                )
            )
        for number, (item_node, item) in enumerate(
            zip(choices_node.value, raw_choices, strict=True), start=1
        ):
            where = f"{where_block}choice {number}: "
            item_line = _source_line(block, item_node.start_mark.line)
            if not isinstance(item_node, yaml.MappingNode) or not isinstance(item, dict):
                problems.append(
                    QuizProblem(item_line, f"{where}expected text, correct and feedback keys")
                )
                continue
            _check_keys(block, item_node, CHOICE_KEYS, where, problems)
            text, correct, feedback = item.get("text"), item.get("correct"), item.get("feedback")
            if not _is_text(text):
                problems.append(QuizProblem(item_line, f"{where}missing or empty 'text'"))
            if not isinstance(correct, bool):
                problems.append(QuizProblem(item_line, f"{where}'correct' must be true or false"))
            if not _is_text(feedback):
                problems.append(QuizProblem(item_line, f"{where}missing or empty 'feedback'"))
            choices.append(Choice(number, str(text or ""), correct is True, str(feedback or "")))
        if raw_choices and not any(c.correct for c in choices):
            problems.append(
                QuizProblem(choices_line, f"{where_block}no choice has 'correct: true'")
            )

    if problems:
        raise QuizError(sorted(problems, key=lambda p: p.line))
    return Quiz(id=str(quiz_id), question=str(question), choices=tuple(choices), hint=str(hint))


def validate_quiz_block(block: QuizBlockLike) -> list[str]:
    """Messages for `manage.py check_content`, each starting with its line in the file."""
    try:
        quiz_parse(block)
    except QuizError as exc:
        return [str(p) for p in exc.problems]
    return []


def quiz_problems_in_lesson(blocks: Iterable[QuizBlockLike]) -> list[QuizProblem]:
    """Problems of a lesson's blocks taken together: each block's own, and repeated ids."""
    problems: list[QuizProblem] = []
    first_line: dict[str, int] = {}
    for block in blocks:
        try:
            quiz = quiz_parse(block)
        except QuizError as exc:
            problems.extend(exc.problems)
            continue
        if quiz.id in first_line:
            problems.append(
                QuizProblem(
                    block.line,
                    f"quiz {quiz.id!r}: id already used on line {first_line[quiz.id]}",
                )
            )
        else:
            first_line[quiz.id] = block.line
    return problems


# ---------------------------------------------------------------------------------------
# Lookup and checking


def quiz_blocks_of(lesson: Any) -> list[QuizBlockLike]:
    return list(getattr(lesson, "quiz_blocks", None) or [])


def quiz_get(*, lesson: Any, quiz_id: str) -> Quiz | None:
    """The valid quiz `quiz_id` of a lesson, or None (unknown, broken or repeated id)."""
    matches = [b for b in quiz_blocks_of(lesson) if b.id == quiz_id]
    if len(matches) != 1:
        return None
    try:
        return quiz_parse(matches[0])
    except QuizError:
        return None


def quiz_check(*, quiz: Quiz, selected: Iterable[int]) -> QuizResult:
    """Check a selection of choice numbers; unknown numbers are ignored."""
    wanted = set(selected)
    chosen = tuple(c for c in quiz.choices if c.number in wanted)
    if not quiz.multiple:
        chosen = chosen[:1]
    right = {c.number for c in quiz.choices if c.correct}
    picked = {c.number for c in chosen}
    correct = bool(picked) and picked == right
    missing = quiz.multiple and bool(picked) and picked < right
    return QuizResult(quiz=quiz, selected=chosen, correct=correct, missing_some=missing)


# ---------------------------------------------------------------------------------------
# Rendering


# A pure function of the text, asked for every quiz of a lesson on every page view: a
# Markdown run costs far more than the rest of a quiz's rendering.
@lru_cache(maxsize=2048)
def inline_markdown(text: str) -> SafeString:
    """Quiz text is a line of Markdown (code, emphasis, links), sanitized like lessons."""
    html = markdown.markdown(text)
    cleaned = nh3.clean(
        html,
        tags=_INLINE_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
    )
    return mark_safe(cleaned.strip())  # noqa: S308 - sanitized by nh3 just above


def lesson_file(lesson: Any) -> str:
    """The lesson's file as authors know it, for 'file:line' messages."""
    path = getattr(lesson, "path", None)
    if path is not None:
        from django.conf import settings

        try:
            return str(path.relative_to(settings.BASE_DIR))
        except (AttributeError, ValueError):
            return str(path)
    return f"content/{getattr(lesson, 'slug', 'lesson')}.md"


def _quiz_context(
    *, quiz: Quiz, slug: str, result: QuizResult | None, preview: bool
) -> dict[str, Any]:
    return {
        "quiz": quiz,
        "question_html": inline_markdown(quiz.question),
        "choices": [(c, inline_markdown(c.text)) for c in quiz.choices],
        "hint_html": inline_markdown(quiz.hint) if quiz.hint else "",
        "action": reverse("course:quiz_answer", kwargs={"slug": slug, "quiz_id": quiz.id}),
        "result": result,
        "feedback": feedback_items(result) if result else [],
        "selected_numbers": {c.number for c in result.selected} if result else set(),
        "preview": preview,
    }


def feedback_items(result: QuizResult) -> list[dict[str, Any]]:
    """Each selected choice with its own feedback and whether that choice was right."""
    return [
        {
            "number": c.number,
            "text_html": inline_markdown(c.text),
            "feedback_html": inline_markdown(c.feedback),
            "right": c.correct,
        }
        for c in result.selected
    ]


def render_feedback(*, result: QuizResult, request: HttpRequest) -> str:
    context = {"result": result, "quiz": result.quiz, "feedback": feedback_items(result)}
    return render_to_string("course/quiz.html#feedback", context, request=request)


def flash_set(*, request: HttpRequest, slug: str, quiz_id: str, selected: list[int]) -> None:
    request.session[FLASH_KEY] = {"slug": slug, "quiz": quiz_id, "selected": selected}


def _flash_pop(request: HttpRequest, slug: str) -> dict[str, Any] | None:
    flash = request.session.get(FLASH_KEY)
    if not isinstance(flash, dict) or flash.get("slug") != slug:
        return None
    del request.session[FLASH_KEY]
    return flash


# Stands for the request's CSRF token in HTML rendered once and served to many (quiz forms
# here, lesson pages in course.views). Random per process, so no lesson text can contain it.
CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"


@lru_cache(maxsize=512)
def _quiz_form(*, template: Template, quiz: Quiz, slug: str, preview: bool) -> str:
    """A quiz's form before any answer: a function of the quiz alone, rendered once, with
    CSRF_SLOT where the token goes. No request in its context: nothing of one learner's
    can end up in it. `template` (the loaded quiz.html) is in the key only, so that a
    template Django reloads (runserver) is rendered afresh."""
    context = _quiz_context(quiz=quiz, slug=slug, result=None, preview=preview)
    return render_to_string("course/quiz.html#quiz", {**context, "csrf_token": CSRF_SLOT})


def render_slots(
    *,
    html: str,
    lesson: Any,
    request: HttpRequest,
    preview: bool = False,
    csrf_token: str | None = None,
) -> SafeString:
    """Replace each quiz placeholder of a lesson's HTML with its form, at request time.

    A broken block shows staff a 'file:line message' box and students nothing. After a
    no-JavaScript answer, the answered quiz shows its feedback once (post/redirect/get).
    csrf_token: the page's own, when the caller has one (else one is made if needed).
    """
    slug = getattr(lesson, "slug", "")
    blocks = quiz_blocks_of(lesson)
    by_id: dict[str, list[QuizBlockLike]] = {}
    for block in blocks:
        by_id.setdefault(block.id, []).append(block)
    lesson_problems = quiz_problems_in_lesson(blocks)
    flash = None if preview else _flash_pop(request, slug)
    user = getattr(request, "user", None)
    is_staff = bool(user is not None and user.is_active and user.is_staff)
    where = lesson_file(lesson)

    slot_number = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal slot_number, csrf_token
        quiz_id = match.group("id")
        # Slots come in the order of the blocks; a block without a usable id has id "".
        positional = blocks[slot_number] if slot_number < len(blocks) else None
        slot_number += 1
        if positional is not None and positional.id == quiz_id:
            found = [positional] if not quiz_id else by_id[quiz_id]
        else:
            found = by_id.get(quiz_id, []) if quiz_id else []
        quiz: Quiz | None = None
        problems: list[QuizProblem] = []
        if len(found) == 1:
            try:
                quiz = quiz_parse(found[0])
            except QuizError as exc:
                problems = exc.problems
        elif found:
            lines = {b.line for b in found}
            problems = [p for p in lesson_problems if p.line in lines] or [
                QuizProblem(found[0].line, f"quiz {quiz_id!r}: id used more than once")
            ]
        else:
            problems = [QuizProblem(0, f"no quiz block with id {quiz_id!r}")]
        if quiz is None:
            if not is_staff:
                return ""
            return render_to_string(
                "course/quiz.html#broken",
                {"quiz_id": quiz_id, "file": where, "problems": problems},
                request=request,
            )
        if flash is not None and flash.get("quiz") == quiz.id:
            result = quiz_check(quiz=quiz, selected=flash.get("selected") or [])
            return render_to_string(
                "course/quiz.html#quiz",
                _quiz_context(quiz=quiz, slug=slug, result=result, preview=preview),
                request=request,
            )
        if csrf_token is None:
            csrf_token = get_token(request)
        template = Engine.get_default().get_template("course/quiz.html")
        form = _quiz_form(template=template, quiz=quiz, slug=slug, preview=preview)
        return form.replace(CSRF_SLOT, csrf_token)

    return mark_safe(SLOT_RE.sub(replace, html))  # noqa: S308 - parts are escaped templates
