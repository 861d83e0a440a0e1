"""Lessons: one Markdown file per lesson in CONTENT_DIR, read on every call, never written.

Files are stat'ed and read on each request, so an edit shows at once with no restart; only
the rendering (a pure function of the bytes) is cached.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from django.conf import settings

from course.markdown import (
    RENDERER_VERSION,
    QuizBlock,
    RenderedMarkdown,
    TocEntry,
    markdown_render,
)

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
    def quiz_blocks(self) -> tuple[QuizBlock, ...]:
        return self.rendered.quiz_blocks

    @property
    def has_diagram(self) -> bool:
        return self.rendered.has_diagram


@dataclass(frozen=True)
class LessonSource:
    """A lesson file split into checked front matter and its Markdown body."""

    summary: LessonSummary
    body: str
    body_line: int  # file line of body's first line
    field_lines: dict[str, int]  # front matter key -> its line in the file
    data: bytes


@dataclass(frozen=True)
class LessonIndex:
    lessons: list[LessonSummary]  # in course order
    errors: list[ContentError]  # files that cannot be served


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


def lesson_paths(*, content_dir: Path | None = None) -> list[Path]:
    directory = Path(content_dir or settings.CONTENT_DIR)
    return sorted(p for p in directory.glob("*.md") if p.is_file())


def lesson_index() -> LessonIndex:
    lessons: list[LessonSummary] = []
    errors: list[ContentError] = []
    for path in lesson_paths():
        try:
            lessons.append(lesson_source_parse(path=path, data=path.read_bytes()).summary)
        except ContentError as exc:
            errors.append(exc)
    lessons.sort(key=lambda lesson: (lesson.order, lesson.slug))
    return LessonIndex(lessons=lessons, errors=errors)


def lesson_list() -> list[LessonSummary]:
    """The servable lessons in course order; broken files are left out (see lesson_index)."""
    return lesson_index().lessons


def lesson_get(*, slug: str) -> Lesson:
    """The lesson at CONTENT_DIR/<slug>.md, rendered; LessonNotFound or ContentError."""
    # The slug pattern admits no dots, slashes, backslashes or NULs: it cannot leave the dir.
    if not SLUG_RE.match(slug):
        raise LessonNotFound(slug)
    path = Path(settings.CONTENT_DIR) / f"{slug}.md"
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise LessonNotFound(slug) from exc
    source = lesson_source_parse(path=path, data=data)
    return Lesson(**vars(source.summary), rendered=lesson_render(source=source))


def lesson_neighbours(
    *, slug: str, lessons: list[LessonSummary]
) -> tuple[LessonSummary | None, LessonSummary | None]:
    """The lessons before and after slug in course order."""
    slugs = [lesson.slug for lesson in lessons]
    if slug not in slugs:
        return None, None
    i = slugs.index(slug)
    return (lessons[i - 1] if i > 0 else None, lessons[i + 1] if i + 1 < len(lessons) else None)


# The rendering cache is process-local on purpose. Its key is the file's hash plus the
# renderer version, so an entry can never go stale and needs no invalidation across
# processes; losing it (restart, another worker) costs one render, never correctness. A
# shared Redis cache would add a round trip and pickling to every lesson view to save
# milliseconds of CPU, and a few dozen small entries per process cost little memory.
_RENDER_CACHE_SIZE = 64
_render_cache: OrderedDict[tuple[str, str], RenderedMarkdown] = OrderedDict()
_render_lock = threading.Lock()


def lesson_render(*, source: LessonSource) -> RenderedMarkdown:
    key = (hashlib.sha256(source.data).hexdigest(), RENDERER_VERSION)
    with _render_lock:
        cached = _render_cache.get(key)
        if cached is not None:
            _render_cache.move_to_end(key)
            return cached
    rendered = markdown_render(text=source.body, first_line=source.body_line)
    with _render_lock:
        _render_cache[key] = rendered
        while len(_render_cache) > _RENDER_CACHE_SIZE:
            _render_cache.popitem(last=False)
    return rendered


def _front_matter_check(
    *, path: Path, front: str, front_line: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Values of the required fields, checked by type, with the line of each key."""

    def error(line: int, message: str) -> ContentError:
        return ContentError(path=path, line=line, message=message)

    # Composed nodes keep line marks (and show repeated keys), which a loaded dict does not.
    try:
        node = yaml.compose(front, Loader=yaml.SafeLoader)
        data = yaml.safe_load(front)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = front_line + (mark.line if mark else 0)
        raise error(line, f"front matter is not valid YAML: {exc.problem}") from exc
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
