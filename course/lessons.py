"""Lessons: one Markdown file per lesson, split into checked front matter and a body.

Pure functions of a file's name and bytes; course.snapshot reads CONTENT_DIR and puts the
results together. No caches here, no Django.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from course.markdown import RenderedMarkdown, TocEntry
from course.quiz import Quiz, QuizSlot
from course.yaml_marks import YamlProblem, yaml_load_marked

SLUG_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"  # also the URL pattern in course.urls
SLUG_RE = re.compile(rf"^{SLUG_PATTERN}\Z")
FRONT_MATTER_FIELDS: dict[str, type] = {"title": str, "summary": str, "order": int, "minutes": int}

_YAML_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number with a fraction",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:null": "empty",
    "tag:yaml.org,2002:timestamp": "a date",
}
_FIELD_TYPE_NAMES = {str: "a string", int: "an integer"}


class ContentError(Exception):
    """A lesson file that cannot be served, and where to fix it."""

    def __init__(self, *, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


class LessonNotFound(LookupError):
    pass


@dataclass(frozen=True)
class LessonSummary:
    slug: str
    title: str
    summary: str
    order: int
    minutes: int
    path: Path


@dataclass(frozen=True)
class Lesson(LessonSummary):
    rendered: RenderedMarkdown = field(repr=False, compare=False)

    @property
    def html(self) -> str:
        return self.rendered.html

    @property
    def toc(self) -> tuple[TocEntry, ...]:
        return self.rendered.toc

    @property
    def quizzes(self) -> tuple[QuizSlot, ...]:
        return self.rendered.quizzes

    @property
    def has_diagram(self) -> bool:
        return self.rendered.has_diagram

    @property
    def quiz_ids(self) -> tuple[str, ...]:
        """The ids of the quizzes a learner can answer, in page order."""
        return tuple(slot.quiz.id for slot in self.quizzes if slot.quiz is not None)

    @property
    def experiment_slugs(self) -> tuple[str, ...]:
        """The slugs of the experiments a learner can run, in page order."""
        return tuple(
            slot.experiment.slug
            for slot in self.rendered.experiments
            if slot.experiment is not None
        )

    def quiz(self, quiz_id: str) -> Quiz | None:
        """The answerable quiz with this id, or None (unknown, broken or repeated)."""
        return next((s.quiz for s in self.quizzes if s.quiz and s.quiz.id == quiz_id), None)


@dataclass(frozen=True)
class LessonSource:
    """A lesson file split into checked front matter and its Markdown body."""

    summary: LessonSummary
    body: str
    body_line: int  # file line of body's first line
    field_lines: dict[str, int]  # front matter key -> its line in the file
    data: bytes

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the file's bytes: a render is reused only for the same digest."""
        return hashlib.sha256(self.data).hexdigest()


def lesson_source_parse(*, path: Path, data: bytes) -> LessonSource:
    """Split and check a lesson file; ContentError names the file and line of any problem."""
    slug = path.stem
    if not SLUG_RE.match(slug):
        raise ContentError(
            path=path,
            line=1,
            message=f"file name {path.name!r} is not a lesson slug "
            "(lowercase letters, digits and single hyphens)",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContentError(path=path, line=line, message="not valid UTF-8") from exc
    handler = frontmatter.YAMLHandler()
    opening = handler.FM_BOUNDARY.match(text) if handler.detect(text) else None  # type: ignore[union-attr]
    if opening is None:
        raise ContentError(path=path, line=1, message="no front matter: start the file with ---")
    try:
        front, body = handler.split(text)
    except ValueError as exc:
        raise ContentError(path=path, line=1, message="front matter has no closing ---") from exc
    front_line = text.count("\n", 0, opening.end()) + 1  # file line of front's first line
    body_line = text.count("\n", 0, len(text) - len(body)) + 1
    values, field_lines = _front_matter_check(path=path, front=front, front_line=front_line)
    return LessonSource(
        summary=LessonSummary(slug=slug, path=path, **values),
        body=body,
        body_line=body_line,
        field_lines=field_lines,
        data=data,
    )


def course_order(lesson: LessonSummary) -> tuple[int, str]:
    return (lesson.order, lesson.slug)


def _front_matter_check(
    *, path: Path, front: str, front_line: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Values of the required fields, checked by type, with the line of each key."""

    def error(line: int, message: str) -> ContentError:
        return ContentError(path=path, line=line, message=message)

    try:
        node, data = yaml_load_marked(front)
    except YamlProblem as exc:
        raise error(
            front_line + exc.line, f"front matter is not valid YAML: {exc.problem}"
        ) from exc
    if node is None:
        node, data = yaml.MappingNode("tag:yaml.org,2002:map", []), {}
    if not isinstance(node, yaml.MappingNode):
        raise error(front_line + node.start_mark.line, "front matter must be 'field: value' lines")

    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = front_line + key_node.start_mark.line
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key not in FRONT_MATTER_FIELDS:
            raise error(
                line,
                f"unknown front matter field {key!r} (fields: {', '.join(FRONT_MATTER_FIELDS)})",
            )
        if key in lines:
            raise error(line, f"front matter field {key!r} is given twice")
        lines[key] = line
        expected, value = FRONT_MATTER_FIELDS[key], data[key]
        # bool is an int in Python, but `order: true` is a mistake, not the number 1.
        if type(value) is not expected:
            got = _YAML_TYPE_NAMES.get(value_node.tag, "a list or mapping")
            raise error(
                front_line + value_node.start_mark.line,
                f"front matter field {key!r} must be {_FIELD_TYPE_NAMES[expected]}, not {got}",
            )
        if isinstance(value, str) and not value.strip():
            raise error(line, f"front matter field {key!r} is empty")
        if key == "minutes" and isinstance(value, int) and value < 1:
            raise error(line, "front matter field 'minutes' must be at least 1")
    missing = [name for name in FRONT_MATTER_FIELDS if name not in lines]
    if missing:
        raise error(front_line, "front matter is missing " + ", ".join(map(repr, missing)))
    return {name: data[name] for name in FRONT_MATTER_FIELDS}, lines
