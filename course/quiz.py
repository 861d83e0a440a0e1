"""Quizzes inside lessons: parse and validate ```quiz blocks, and check answers.

No Django here, and no rendering beyond the `inline` function the caller passes for the
quiz's text (course.markdown passes its sanitizing inline Markdown, in the renderer's child
process). Which choices are correct never leaves the server until the learner has
answered: the page carries only choice numbers, and feedback comes back from a POST.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import yaml

from course.yaml_marks import YamlProblem, yaml_key_nodes, yaml_load_marked, yaml_value_node

QUIZ_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
QUIZ_KEYS = ("id", "question", "choices", "hint", "order")
# How a quiz's choices are shown: in an order of their own (the same for every learner),
# so that where the right answer was written says nothing; or as written, for choices that
# form a scale ("5", "10", "up to 40"). The first is the default.
QUIZ_ORDERS = ("shuffled", "fixed")
CHOICE_KEYS = ("text", "correct", "feedback")
MIN_CHOICES, MAX_CHOICES = 2, 5


@dataclass(frozen=True)
class Choice:
    number: int  # 1-based, the only thing about a choice that the form sends
    text: str
    correct: bool
    feedback: str
    text_html: str = ""  # sanitized inline HTML of text and feedback
    feedback_html: str = ""


@dataclass(frozen=True)
class Quiz:
    id: str
    question: str
    choices: tuple[Choice, ...]
    hint: str = ""
    question_html: str = ""
    hint_html: str = ""
    order: str = QUIZ_ORDERS[0]

    @property
    def shown(self) -> tuple[Choice, ...]:
        """The choices in the order the page shows them. Shuffled, the order is a hash of
        the quiz's id and each choice's number: stable across renders, processes and
        learners, and changed only by renumbering. Numbers stay what the form sends."""
        if self.order == "fixed":
            return self.choices
        return tuple(
            sorted(
                self.choices,
                key=lambda c: hashlib.sha256(f"{self.id}:{c.number}".encode()).digest(),
            )
        )

    @property
    def multiple(self) -> bool:
        """Several correct choices: the form uses checkboxes, and all of them are needed."""
        return sum(c.correct for c in self.choices) > 1

    @property
    def input_type(self) -> str:
        return "checkbox" if self.multiple else "radio"


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
class QuizSlot:
    """One ```quiz fence of a lesson, in page order: its quiz, or why it cannot be shown."""

    line: int  # the opening fence's line in the file
    quiz: Quiz | None
    problems: tuple[QuizProblem, ...] = ()


@dataclass(frozen=True)
class QuizResult:
    quiz: Quiz
    selected: tuple[Choice, ...]
    correct: bool
    # Only for several-correct quizzes: the selection was right as far as it went.
    missing_some: bool = False


# ---------------------------------------------------------------------------------------
# Parsing and validation


def quiz_parse(*, source: str, line: int, inline: Callable[[str], str] = html.escape) -> Quiz:
    """Parse one ```quiz block (its YAML, and the line of its opening fence); QuizError
    lists every problem with its file line. `inline` turns a text into safe HTML."""
    return _Parser(source=source, fence_line=line).parse(inline)


def quiz_slots(
    *, blocks: Iterable[tuple[str, int]], inline: Callable[[str], str] = html.escape
) -> tuple[QuizSlot, ...]:
    """A lesson's blocks (source, fence line), each parsed; a repeated id makes every
    block that uses it unusable, the later ones named with the line of the first."""
    parsed: list[tuple[int, Quiz | None, list[QuizProblem]]] = []
    for source, line in blocks:
        try:
            parsed.append((line, quiz_parse(source=source, line=line, inline=inline), []))
        except QuizError as exc:
            parsed.append((line, None, exc.problems))
    first_line: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    for line, quiz, problems in parsed:
        if quiz is None:
            continue
        if quiz.id in first_line:
            repeats.setdefault(quiz.id, []).append(line)
            message = f"quiz id {quiz.id!r} is also used on line {first_line[quiz.id]}"
            problems.append(QuizProblem(line, message))
        else:
            first_line[quiz.id] = line
    for quiz_id, lines in repeats.items():
        problems = next(p for line, _, p in parsed if line == first_line[quiz_id])
        again = ", ".join(map(str, lines))
        problems.append(
            QuizProblem(first_line[quiz_id], f"quiz id {quiz_id!r} is used again on line {again}")
        )
    return tuple(
        QuizSlot(line=line, quiz=None, problems=tuple(problems))
        if quiz is None or quiz.id in repeats
        else QuizSlot(line=line, quiz=quiz)
        for line, quiz, problems in parsed
    )


class _Parser:
    def __init__(self, *, source: str, fence_line: int) -> None:
        self.source = source
        self.fence_line = fence_line
        self.problems: list[QuizProblem] = []
        self.where = "quiz: "

    def line_of(self, node: yaml.Node) -> int:
        """File line of a node (line 1 of the source follows the fence)."""
        return self.fence_line + 1 + node.start_mark.line

    def problem(self, line: int, message: str) -> None:
        self.problems.append(QuizProblem(line, f"{self.where}{message}"))

    def value_line(self, node: yaml.MappingNode, key: str) -> int:
        value = yaml_value_node(node, key)
        return self.fence_line if value is None else self.line_of(value)

    def key_line(self, node: yaml.MappingNode, key: str) -> int:
        for key_node, _ in yaml_key_nodes(node):
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return self.line_of(key_node)
        return self.fence_line

    def check_keys(self, node: yaml.MappingNode, allowed: Sequence[str], where: str) -> None:
        seen: set[str] = set()
        for key_node, _ in yaml_key_nodes(node):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            if key not in allowed:
                self.problem(
                    self.line_of(key_node),
                    f"{where}unknown key {key!r} (allowed: {', '.join(allowed)})",
                )
            elif key in seen:
                self.problem(self.line_of(key_node), f"{where}key {key!r} appears twice")
            seen.add(key)

    def parse(self, inline: Callable[[str], str]) -> Quiz:
        try:
            root, data = yaml_load_marked(self.source)
        except YamlProblem as exc:
            line = self.fence_line + 1 + exc.line
            message = exc.message(first_line=self.fence_line + 1)
            raise QuizError([QuizProblem(line, f"quiz: invalid YAML: {message}")]) from exc
        if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
            raise QuizError(
                [
                    QuizProblem(
                        self.fence_line,
                        f"quiz: expected 'key: value' lines ({', '.join(QUIZ_KEYS)})",
                    )
                ]
            )
        quiz_id = data.get("id")
        if isinstance(quiz_id, str) and QUIZ_ID_RE.match(quiz_id):
            self.where = f"quiz {quiz_id!r}: "
        self.check_keys(root, QUIZ_KEYS, "")
        if quiz_id is None:
            self.problem(self.fence_line, "missing 'id'")
        elif not isinstance(quiz_id, str) or not QUIZ_ID_RE.match(quiz_id):
            self.problem(
                self.value_line(root, "id"),
                f"id {quiz_id!r} must be lowercase letters, digits and hyphens",
            )
        question = data.get("question")
        if question is None:
            self.problem(self.fence_line, "missing 'question'")
        elif not _is_text(question):
            self.problem(self.value_line(root, "question"), "'question' must be non-empty text")
        hint = data.get("hint", "")
        if "hint" in data and not _is_text(hint):
            self.problem(
                self.value_line(root, "hint"), "'hint' must be non-empty text (or leave it out)"
            )
        order = data.get("order", QUIZ_ORDERS[0])
        if order not in QUIZ_ORDERS:
            self.problem(
                self.value_line(root, "order"),
                f"'order' must be one of {', '.join(QUIZ_ORDERS)}, not {order!r}",
            )
        choices = self.choices(root, data.get("choices"), inline)
        if self.problems:
            raise QuizError(sorted(self.problems, key=lambda p: p.line))
        return Quiz(
            id=str(quiz_id),
            question=str(question),
            choices=choices,
            hint=str(hint),
            question_html=inline(str(question)),
            hint_html=inline(str(hint)) if hint else "",
            order=str(order),
        )

    def choices(
        self, root: yaml.MappingNode, raw: Any, inline: Callable[[str], str]
    ) -> tuple[Choice, ...]:
        node = yaml_value_node(root, "choices")
        if raw is None or node is None:
            self.problem(self.fence_line, "missing 'choices'")
            return ()
        line = self.key_line(root, "choices")
        if not isinstance(node, yaml.SequenceNode) or not isinstance(raw, list):
            self.problem(line, "'choices' must be a list of '- text: ...' items")
            return ()
        if not MIN_CHOICES <= len(raw) <= MAX_CHOICES:
            self.problem(line, f"needs {MIN_CHOICES} to {MAX_CHOICES} choices, found {len(raw)}")
        choices: list[Choice] = []
        any_correct = False
        for number, (item_node, item) in enumerate(zip(node.value, raw, strict=True), start=1):
            where = f"choice {number}: "
            item_line = self.line_of(item_node)
            if not isinstance(item_node, yaml.MappingNode) or not isinstance(item, dict):
                self.problem(item_line, f"{where}expected text, correct and feedback keys")
                continue
            self.check_keys(item_node, CHOICE_KEYS, where)
            text, correct, feedback = item.get("text"), item.get("correct"), item.get("feedback")
            if not _is_text(text):
                self.problem(item_line, f"{where}missing or empty 'text'")
            if not isinstance(correct, bool):
                self.problem(item_line, f"{where}'correct' must be true or false")
            if not _is_text(feedback):
                self.problem(item_line, f"{where}missing or empty 'feedback'")
            any_correct = any_correct or correct is True
            if _is_text(text) and _is_text(feedback):
                choices.append(
                    Choice(
                        number=number,
                        text=text,
                        correct=correct is True,
                        feedback=feedback,
                        text_html=inline(text),
                        feedback_html=inline(feedback),
                    )
                )
        if raw and not any_correct:
            self.problem(line, "no choice has 'correct: true'")
        return tuple(choices)


def _is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


# ---------------------------------------------------------------------------------------
# Checking


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
