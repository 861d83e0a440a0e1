"""Checks over the lesson files for `manage.py check_content`: each problem with file:line.

Reads CONTENT_DIR, never writes it. Everything a learner would meet as a broken page, a
dead link or silently missing text should be caught here first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import Resolver404, resolve
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from course.experiment import ExperimentSlot
from course.lessons import LessonSource
from course.markdown import (
    ALLOWED_TAGS,
    SPECIAL_FENCES,
    Fence,
    RenderedMarkdown,
    fences_find,
    html_sanitize,
)
from course.quiz import QuizSlot
from course.snapshot import CourseSnapshot, course_snapshot_build

HREF_RE = re.compile(r'href="([^"]+)"')
# A quiz that asks what a playground lab shows must point at the experiment that shows it.
PLAYGROUND_LAB_RE = re.compile(r"\bplayground lab\b", re.IGNORECASE)
EXPERIMENT_CARD_RE = re.compile(r"#experiment-[a-z0-9-]+$")

LESSON_PATH_RE = re.compile(r"^/lessons/(?P<slug>[^/]+)/$")
_CODE_SPAN_RE = re.compile(r"(`+).+?\1")
# A diagram's accessible name (static/js/diagrams.js reads it): Mermaid's accTitle, or the
# same as a %% comment in diagram types whose syntax has none (mindmap).
_DIAGRAM_TITLE_RE = re.compile(r"^\s*(?:%%\s*)?accTitle:\s*\S", re.M)
_RAW_TAG_RE = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^<>]*)?/?>")


@dataclass(frozen=True, order=True)
class ContentProblem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{_display(self.path)}:{self.line}: {self.message}"


def content_check(*, content_dir: Path | None = None) -> list[ContentProblem]:
    """Every problem in the lesson files of content_dir (CONTENT_DIR by default)."""
    return content_problems(course_snapshot_build(content_dir=content_dir or settings.CONTENT_DIR))


def content_problems(snapshot: CourseSnapshot) -> list[ContentProblem]:
    """Every problem in a course snapshot's files, sorted by file and line."""
    # Files that cannot be served: their front matter, or a render stopped at the limit.
    problems = [ContentProblem(e.path, e.line, e.message) for e in snapshot.errors]
    # Slugs are file names in one directory, so they are unique; orders are not.
    problems += _order_problems(list(snapshot.sources.values()))
    existing = {Path(name).stem for name in snapshot.contents}
    # What a link may point at: a heading, or an experiment's card.
    anchors = {
        lesson.slug: lesson.rendered.heading_ids
        | {f"experiment-{s.experiment.slug}" for s in lesson.rendered.experiments if s.experiment}
        for lesson in snapshot.lessons
    }
    for lesson in snapshot.lessons:
        source, rendered = snapshot.sources[lesson.slug], lesson.rendered
        fences = fences_find(text=source.body, first_line=source.body_line)
        problems += _fence_problems(source, fences)
        problems += _link_problems(source, fences, rendered, existing, anchors, lesson.slug)
        problems += _raw_html_problems(source, fences)
        problems += _quiz_problems(source, rendered.quizzes)
        problems += _quiz_link_problems(source, lesson.slug, rendered.quizzes, existing, anchors)
        problems += _slot_problems(source, rendered.experiments)
    problems += _experiment_slug_problems(snapshot)
    return sorted(problems)


def _order_problems(sources: list[LessonSource]) -> list[ContentProblem]:
    problems = []
    first: dict[int, LessonSource] = {}
    for source in sorted(sources, key=lambda s: s.summary.path):
        order = source.summary.order
        if order in first:
            problems.append(
                ContentProblem(
                    source.summary.path,
                    source.field_lines["order"],
                    f"order {order} is also used by {_display(first[order].summary.path)}",
                )
            )
        else:
            first[order] = source
    return problems


def _fence_problems(source: LessonSource, fences: list[Fence]) -> list[ContentProblem]:
    problems = []
    path = source.summary.path
    for fence in fences:
        if not fence.closed:
            problems.append(ContentProblem(path, fence.line, "code fence is never closed"))
        if fence.language == "mermaid" and not _DIAGRAM_TITLE_RE.search(fence.source):
            problems.append(
                ContentProblem(
                    path,
                    fence.line,
                    "diagram has no name: add a line 'accTitle: what it shows' after its "
                    "type (as '%% accTitle: ...' in a mindmap)",
                )
            )
        if fence.language and fence.language not in SPECIAL_FENCES:
            try:
                get_lexer_by_name(fence.language)
            except ClassNotFound:
                problems.append(
                    ContentProblem(path, fence.line, f"unknown code language {fence.language!r}")
                )
    return problems


def _link_problems(
    source: LessonSource,
    fences: list[Fence],
    rendered: RenderedMarkdown,
    existing: set[str],
    anchors: dict[str, frozenset[str]],
    slug: str,
) -> list[ContentProblem]:
    problems = []
    for href in dict.fromkeys(rendered.links):  # each distinct link once, in order
        message = _link_problem(href, own=anchors[slug], existing=existing, headings=anchors)
        if message:
            problems += [
                ContentProblem(source.summary.path, line, message)
                for line in _lines_with(source, fences, href)
            ]
    return problems


def _link_problem(
    href: str, *, own: frozenset[str], existing: set[str], headings: dict[str, frozenset[str]]
) -> str | None:
    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        return None  # external: not checked (no network here, and not ours to keep alive)
    if not parts.path:
        if parts.fragment and parts.fragment not in own:
            return f"link to #{parts.fragment}: no such heading in this lesson"
        return None
    if not parts.path.startswith("/"):
        return f"relative link {href!r}: start internal links with /"
    lesson = LESSON_PATH_RE.match(parts.path)
    if lesson:
        slug = lesson["slug"]
        if slug not in existing:
            return f"link to {href!r}: there is no lesson {slug!r}"
        # A target that fails to parse has its own problem reported; its headings are unknown.
        if parts.fragment and slug in headings and parts.fragment not in headings[slug]:
            return f"link to {href!r}: lesson {slug!r} has no heading #{parts.fragment}"
        return None
    if parts.path.startswith(settings.STATIC_URL):
        if not finders.find(parts.path.removeprefix(settings.STATIC_URL)):
            return f"link to {href!r}: no such static file"
        return None
    try:
        resolve(parts.path)
    except Resolver404:
        return f"link to {href!r}: no page at {parts.path}"
    return None


def _raw_html_problems(source: LessonSource, fences: list[Fence]) -> list[ContentProblem]:
    """Raw HTML in the Markdown that the sanitizer would drop without a word."""
    problems = []
    for line_number, line in _prose_lines(source, fences):
        for match in _RAW_TAG_RE.finditer(_CODE_SPAN_RE.sub("", line)):
            tag, before = _first_tag(match[0])
            if tag is None:
                continue
            if tag not in ALLOWED_TAGS:
                problems.append(
                    ContentProblem(
                        source.summary.path,
                        line_number,
                        f"raw HTML <{tag}> is removed by the sanitizer",
                    )
                )
                continue
            _, after = _first_tag(html_sanitize(html=f"{match[0]}</{tag}>"))
            dropped = [name for name, value in before.items() if after.get(name) != value]
            if dropped:
                names = ", ".join(dropped)
                problems.append(
                    ContentProblem(
                        source.summary.path,
                        line_number,
                        f"raw HTML <{tag}>: the sanitizer removes {names}",
                    )
                )
    return problems


def _quiz_problems(source: LessonSource, slots: tuple[QuizSlot, ...]) -> list[ContentProblem]:
    path = source.summary.path
    return [ContentProblem(path, p.line, p.message) for slot in slots for p in slot.problems]


def _quiz_link_problems(
    source: LessonSource,
    slug: str,
    slots: tuple[QuizSlot, ...],
    existing: set[str],
    anchors: dict[str, frozenset[str]],
) -> list[ContentProblem]:
    """Links in a quiz's question, hint, choices and feedback, checked like the prose's, at
    the quiz's line; a quiz about a playground lab links the experiment that answers it."""
    problems = []
    for slot in slots:
        if slot.quiz is None:
            continue
        quiz = slot.quiz
        parts = [quiz.question_html, quiz.hint_html]
        parts += [html for c in quiz.choices for html in (c.text_html, c.feedback_html)]
        hrefs = [unescape(h) for part in parts for h in HREF_RE.findall(part)]
        for href in dict.fromkeys(hrefs):
            message = _link_problem(
                href, own=anchors.get(slug, frozenset()), existing=existing, headings=anchors
            )
            if message:
                problems.append(ContentProblem(source.summary.path, slot.line, f"quiz: {message}"))
        if PLAYGROUND_LAB_RE.search(quiz.question_html) and not any(
            EXPERIMENT_CARD_RE.search(href) for href in hrefs
        ):
            message = (
                "quiz: it asks what a playground lab shows, so a feedback must link the "
                "experiment that shows it (#experiment-<slug>, in this lesson or another)"
            )
            problems.append(ContentProblem(source.summary.path, slot.line, message))
    return problems


def _slot_problems(source: LessonSource, slots: tuple[ExperimentSlot, ...]) -> list[ContentProblem]:
    path = source.summary.path
    return [ContentProblem(path, p.line, p.message) for slot in slots for p in slot.problems]


def _experiment_slug_problems(snapshot: CourseSnapshot) -> list[ContentProblem]:
    """An experiment's slug names its card (#experiment-<slug>) across the course."""
    first: dict[str, tuple[Path, int]] = {}
    problems = []
    for lesson in snapshot.lessons:
        path = snapshot.sources[lesson.slug].summary.path
        for slot in lesson.rendered.experiments:
            if slot.experiment is None:
                continue
            slug = slot.experiment.slug
            if slug in first:
                where = f"{_display(first[slug][0])}:{first[slug][1]}"
                message = f"experiment slug {slug!r} is also used at {where}"
                problems.append(ContentProblem(path, slot.line, message))
            else:
                first[slug] = (path, slot.line)
    return problems


def _prose_lines(source: LessonSource, fences: list[Fence]) -> list[tuple[int, str]]:
    """(file line, text) of the body lines outside fenced blocks."""
    fenced = {n for fence in fences for n in range(fence.line, fence.end_line + 1)}
    return [
        (number, line)
        for number, line in enumerate(source.body.split("\n"), start=source.body_line)
        if number not in fenced
    ]


def _lines_with(source: LessonSource, fences: list[Fence], needle: str) -> list[int]:
    lines = [number for number, line in _prose_lines(source, fences) if needle in line]
    return lines or [source.body_line]


def _first_tag(fragment: str) -> tuple[str | None, dict[str, str]]:
    parser = _FirstTag()
    parser.feed(fragment)
    parser.close()
    return parser.tag, parser.attributes


class _FirstTag(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tag: str | None = None
        self.attributes: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.tag is None:
            self.tag = tag
            self.attributes = {name: value or "" for name, value in attrs}


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
