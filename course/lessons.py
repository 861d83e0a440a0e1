"""Lessons: one Markdown file per lesson in CONTENT_DIR, looked at on every call, never written.

Every call stats the files, so an edit shows on the next request with no restart; what a
file's bytes give (front matter, rendering) is cached and reused only while the file is
provably unchanged (see _source_entry).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
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
)
from course.markdown_process import (
    RenderTooSlow,
    markdown_render_bounded,
    markdown_render_bounded_many,
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
# libyaml's parser when PyYAML was built with it: the same safe types, several times faster.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the file's bytes: the rendering cache's key, computed once per version."""
        return hashlib.sha256(self.data).hexdigest()


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
    for entry in _content_entries():
        if entry.source is not None:
            lessons.append(entry.source.summary)
        elif entry.error is not None:
            errors.append(entry.error)
    lessons.sort(key=_course_order)
    return LessonIndex(lessons=lessons, errors=errors)


def lesson_get_all() -> list[Lesson]:
    """Every servable lesson, rendered, in course order (files that cannot be parsed or
    rendered are left out). Renders still missing are made in one child process, not one
    each: the home page and search need them all, first thing after a start."""
    sources = [entry.source for entry in _content_entries() if entry.source is not None]
    sources.sort(key=lambda source: _course_order(source.summary))
    _render_ahead(sources)
    lessons = []
    for source in sources:
        try:
            lessons.append(_lesson_of(source))
        except ContentError:
            continue
    return lessons


def _course_order(lesson: LessonSummary) -> tuple[int, str]:
    return (lesson.order, lesson.slug)


def _lesson_of(source: LessonSource) -> Lesson:
    return Lesson(**vars(source.summary), rendered=lesson_render(source=source))


def _content_entries() -> list[_SourceEntry]:
    """The *.md files of CONTENT_DIR, one stat each (the one _source_entry makes)."""
    directory = os.fspath(settings.CONTENT_DIR)
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".md"))
    except (FileNotFoundError, NotADirectoryError):
        names = []  # as lesson_paths(): no directory, no lessons
    entries = []
    for name in names:
        try:
            entries.append(_source_entry(os.path.join(directory, name)))
        except (FileNotFoundError, NotADirectoryError, _NotAFile):
            continue  # not a regular file, or gone since the directory was listed
    return entries


def lesson_list() -> list[LessonSummary]:
    """The servable lessons in course order; broken files are left out (see lesson_index)."""
    return lesson_index().lessons


def lesson_get(*, slug: str) -> Lesson:
    """The lesson at CONTENT_DIR/<slug>.md, rendered; LessonNotFound or ContentError."""
    # The slug pattern admits no dots, slashes, backslashes or NULs: it cannot leave the dir.
    if not SLUG_RE.match(slug):
        raise LessonNotFound(slug)
    try:
        entry = _source_entry(os.path.join(os.fspath(settings.CONTENT_DIR), f"{slug}.md"))
    except (FileNotFoundError, NotADirectoryError, _NotAFile) as exc:
        raise LessonNotFound(slug) from exc
    if entry.source is None:
        assert entry.error is not None
        # A fresh exception per raise: raising the cached one again would grow its traceback.
        error = entry.error
        raise ContentError(path=error.path, line=error.line, message=error.message) from (
            error.__cause__
        )
    source = entry.source
    return _lesson_of(source)


def lesson_neighbours(
    *, slug: str, lessons: list[LessonSummary]
) -> tuple[LessonSummary | None, LessonSummary | None]:
    """The lessons before and after slug in course order."""
    slugs = [lesson.slug for lesson in lessons]
    if slug not in slugs:
        return None, None
    i = slugs.index(slug)
    return (lessons[i - 1] if i > 0 else None, lessons[i + 1] if i + 1 < len(lessons) else None)


class _NotAFile(OSError):
    """The path names a directory, a FIFO or the like: not a lesson file."""


@dataclass(frozen=True)
class _SourceEntry:
    key: tuple[int, ...]  # the file's stat when data was read
    settled: bool  # the file's last change was long before that stat: key can be trusted
    data: bytes
    source: LessonSource | None
    error: ContentError | None


# How much older than our stat() a file's last change must be before its stat alone is
# trusted to show the next change. Timestamps are coarse (a clock tick on ext4, 1 s on
# HFS+, 2 s on FAT), so two same-size writes within one tick leave the same stat behind;
# within this window the bytes are read and compared on every call (as git does for
# "racily clean" files). 2 s covers the coarsest filesystem we might meet.
_RACY_NS = 2_000_000_000
_SOURCE_CACHE_SIZE = 256
# Keyed by the path as a string: a request looks up every lesson, and building and hashing
# Path objects would cost more than the stat() calls.
_source_cache: OrderedDict[str, _SourceEntry] = OrderedDict()
_source_lock = threading.Lock()  # for writes; a lookup is one atomic dict read


def _source_entry(path: str) -> _SourceEntry:
    """lesson_source_parse of the file at path (its result or its ContentError), at the cost
    of one stat() when the file is unchanged.

    Keyed by stat (device, inode, size, mtime, ctime) rather than by a hash of the bytes, so
    that an unchanged file is not even read. Every write, truncate, rename over it or
    utime() sets ctime to the current time, which no tool can set back. Any change of the
    key, or a file changed too recently for its key to be trusted (see _RACY_NS), means a
    read; equal bytes then reuse the parse, which depends only on path and bytes.
    Raises FileNotFoundError, NotADirectoryError or _NotAFile when there is no file to read.
    """
    checked_at = time.time_ns()  # before the stat: a change after it cannot be in it
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise _NotAFile(path)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    entry = _source_cache.get(path)
    if entry is None or entry.key != key or not entry.settled:
        file = Path(path)
        data = file.read_bytes()
        if entry is None or entry.data != data:
            try:
                source, error = lesson_source_parse(path=file, data=data), None
            except ContentError as exc:
                source, error = None, exc
        else:
            source, error = entry.source, entry.error
        # A change between the stat and the read is caught next time: its stat differs.
        settled = info.st_ctime_ns < checked_at - _RACY_NS
        entry = _SourceEntry(key=key, settled=settled, data=data, source=source, error=error)
        with _source_lock:
            _source_cache[path] = entry
            _source_cache.move_to_end(path)
            while len(_source_cache) > _SOURCE_CACHE_SIZE:
                _source_cache.popitem(last=False)
    return entry


# The rendering cache is process-local on purpose. Its key is the file's hash plus the
# renderer version, so an entry can never go stale and needs no invalidation across
# processes; losing it (restart, another worker) costs one render, never correctness. A
# shared Redis cache would add a round trip and pickling to every lesson view to save
# milliseconds of CPU, and a few dozen small entries per process cost little memory.
# A render stopped at its time limit is kept too (as the message), so a pathological file
# costs LESSON_RENDER_SECONDS once per version, not on every request.
_RENDER_CACHE_SIZE = 64
_render_cache: OrderedDict[tuple[str, str], RenderedMarkdown | RenderTooSlow] = OrderedDict()
_render_lock = threading.Lock()
# One render at a time per key: a burst of first views of a lesson starts one renderer.
_render_key_locks: dict[tuple[str, str], threading.Lock] = {}


def lesson_render(*, source: LessonSource) -> RenderedMarkdown:
    """The lesson body's HTML and facts, rendered in a child process (see
    course.markdown_process); ContentError when that render took too long."""
    key = _render_key(source)
    cached = _render_cached(key)
    if cached is None:
        with _render_lock:
            key_lock = _render_key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = _render_cached(key)  # rendered while this thread waited for the lock?
            if cached is None:
                cached = _render_and_keep(key, source)
    if isinstance(cached, RenderTooSlow):
        raise ContentError(path=source.summary.path, line=cached.line, message=cached.message)
    return cached


def _render_and_keep(
    key: tuple[str, str], source: LessonSource
) -> RenderedMarkdown | RenderTooSlow:
    try:
        rendered: RenderedMarkdown | RenderTooSlow = markdown_render_bounded(
            text=source.body, first_line=source.body_line, seconds=settings.LESSON_RENDER_SECONDS
        )
    except RenderTooSlow as exc:
        rendered = exc
    finally:
        with _render_lock:
            _render_key_locks.pop(key, None)
    _render_keep({key: rendered})
    return rendered


def _render_ahead(sources: list[LessonSource]) -> None:
    """Render the sources not in the cache yet, together in one child process. A batch
    stopped at the time limit is dropped: lesson_render then renders each on its own,
    which finds the slow one and names its paragraph."""
    keyed = ((_render_key(source), source) for source in sources)
    missing = {key: source for key, source in keyed if _render_cached(key) is None}
    if len(missing) < 2:
        return
    try:
        rendered = markdown_render_bounded_many(
            items=[(source.body, source.body_line) for source in missing.values()],
            seconds=settings.LESSON_RENDER_SECONDS,
        )
    except RenderTooSlow:
        return
    _render_keep(dict(zip(missing, rendered, strict=True)))


def _render_keep(renders: dict[tuple[str, str], RenderedMarkdown | RenderTooSlow]) -> None:
    with _render_lock:
        _render_cache.update(renders)
        for key in renders:
            _render_cache.move_to_end(key)
        while len(_render_cache) > _RENDER_CACHE_SIZE:
            _render_cache.popitem(last=False)


def _render_key(source: LessonSource) -> tuple[str, str]:
    return (source.digest, RENDERER_VERSION)


def _render_cached(key: tuple[str, str]) -> RenderedMarkdown | RenderTooSlow | None:
    with _render_lock:
        cached = _render_cache.get(key)
        if cached is not None:
            _render_cache.move_to_end(key)
        return cached


def _front_matter_check(
    *, path: Path, front: str, front_line: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Values of the required fields, checked by type, with the line of each key."""

    def error(line: int, message: str) -> ContentError:
        return ContentError(path=path, line=line, message=message)

    # Composed nodes keep line marks (and show repeated keys), which a loaded dict does not;
    # the dict is constructed from those same nodes, so the YAML is parsed once.
    try:
        loader = _YamlLoader(front)
        try:
            node = loader.get_single_node()
            data: Any = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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
