"""The course snapshot: everything derived from the content directory, in one immutable
object, built in one pass and replaced whole.

Views, search, `check_content` and the author preview all read the course through it. It
never holds anything about a learner: pages are rendered per request from it, with the
real request. The site's snapshot is kept per process and re-checked on every call with
one stat() per lesson file, so an edit shows on the next request with no restart.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from course.experiment import Experiment
from course.lessons import (
    ContentError,
    Lesson,
    LessonNotFound,
    LessonSource,
    LessonSummary,
    course_order,
    lesson_source_parse,
)
from course.markdown import RenderedMarkdown
from course.markdown_process import (
    RenderTooSlow,
    markdown_render_bounded,
    markdown_render_bounded_many,
)
from course.quiz_forms import QuizForm, quiz_form_build
from course.search import IndexedLesson, search_index_build

# How much older than our stat() a file's last change must be before its stat alone is
# trusted to show the next change. Timestamps are coarse (a clock tick on ext4, 1 s on
# HFS+, 2 s on FAT), so two same-size writes within one tick leave the same stat behind;
# within this window the bytes are read and compared on every call (as git does for
# "racily clean" files). 2 s covers the coarsest filesystem we might meet.
RACY_NS = 2_000_000_000

log = logging.getLogger("course.snapshot")

FileKey = tuple[str, int, int, int, int, int]  # name, device, inode, size, mtime, ctime
Render = RenderedMarkdown | RenderTooSlow


@dataclass(frozen=True)
class CourseSnapshot:
    directory: str
    files: tuple[FileKey, ...]  # every *.md file's stat when it was read, by name
    contents: Mapping[str, bytes] = field(repr=False)  # every *.md file's bytes, by name
    settled: bool  # no file changed within RACY_NS of the build: `files` can be trusted
    lessons: tuple[Lesson, ...]  # the servable lessons, in course order
    errors: tuple[ContentError, ...]  # files that cannot be served, by file name
    sources: Mapping[str, LessonSource] = field(repr=False)  # every parsed file, by slug
    renders: Mapping[str, Render] = field(repr=False)  # by file digest: what a rebuild reuses
    search_index: tuple[IndexedLesson, ...] = field(repr=False)
    # Each quiz's form as a page shows it unanswered, by lesson slug and quiz id.
    quiz_forms: Mapping[str, Mapping[str, QuizForm]] = field(repr=False)
    # Each servable lesson's page address, by slug.
    urls: Mapping[str, str] = field(repr=False)

    def lesson_get(self, *, slug: str) -> Lesson:
        """The servable lesson `slug`; LessonNotFound, or ContentError saying where the
        file is broken."""
        for lesson in self.lessons:
            if lesson.slug == slug:
                return lesson
        for error in self.errors:
            if error.path.stem == slug:
                # A fresh exception per raise: raising the kept one would grow its traceback.
                raise ContentError(path=error.path, line=error.line, message=error.message)
        raise LessonNotFound(slug)

    def experiment_get(self, *, slug: str) -> tuple[Lesson, Experiment] | None:
        """The experiment `slug` (unique in the course) and the lesson it is in."""
        for lesson in self.lessons:
            for slot in lesson.rendered.experiments:
                if slot.experiment is not None and slot.experiment.slug == slug:
                    return lesson, slot.experiment
        return None

    def number(self, *, slug: str) -> int | None:
        """The lesson's 1-based place in the course."""
        return next((i for i, one in enumerate(self.lessons, 1) if one.slug == slug), None)

    def neighbours(self, *, slug: str) -> tuple[LessonSummary | None, LessonSummary | None]:
        """The lessons before and after slug in course order."""
        number = self.number(slug=slug)
        if number is None:
            return None, None
        before = self.lessons[number - 2] if number > 1 else None
        after = self.lessons[number] if number < len(self.lessons) else None
        return before, after


_current: CourseSnapshot | None = None
_lock = threading.Lock()  # one build at a time; a request that finds a change waits for it


def course_snapshot() -> CourseSnapshot:
    """The snapshot of CONTENT_DIR as it is now: the kept one when no file changed."""
    global _current
    directory = os.fspath(settings.CONTENT_DIR)
    current = _current
    if current is not None and _unchanged(current, directory):
        return current
    with _lock:
        current = _current  # built by another thread while this one waited?
        if current is None or not _unchanged(current, directory):
            current = _current = course_snapshot_build(content_dir=directory, previous=current)
        return current


def course_snapshot_warm() -> None:
    """Build the site's snapshot now, as a web process starts and before it listens.

    Built on the first request instead, it renders every lesson (about a second, more on a
    busy machine) inside Django's one thread for synchronous views, where the proxy's
    `/healthz` waits behind it: two missed checks and HAProxy takes the new process out of
    service, cutting its requests (deploy/haproxy.cfg). Broken lessons are no reason not to
    start: their pages say what is wrong, as on any request."""
    try:
        course_snapshot()
    except OSError as exc:
        log.warning("the course could not be read at start (%s); pages will say so", exc)


def course_snapshot_build(
    *, content_dir: str | Path, previous: CourseSnapshot | None = None
) -> CourseSnapshot:
    """Read every lesson file of content_dir and derive everything from them. Renders of
    files whose bytes `previous` already had are reused; the rest are made together in
    one child process (see course.markdown_process)."""
    directory = os.fspath(content_dir)
    checked_at = time.time_ns()  # before the stats: a change after it cannot be in them
    files: list[FileKey] = []
    contents: dict[str, bytes] = {}
    sources: dict[str, LessonSource] = {}
    errors: list[ContentError] = []
    for name, info in _lesson_files(directory):
        path = Path(directory, name)
        try:
            data = path.read_bytes()
        except OSError:
            continue  # gone since the directory was listed
        # A change between the stat and the read is caught next time: its stat differs.
        files.append(_file_key(name, info))
        contents[name] = data
        try:
            source = lesson_source_parse(path=path, data=data)
        except ContentError as exc:
            errors.append(exc)
            continue
        sources[source.summary.slug] = source
    settled = all(key[5] < checked_at - RACY_NS for key in files)
    if previous is not None and previous.directory == directory and previous.contents == contents:
        return replace(previous, files=tuple(files), settled=settled)

    renders = _renders(sources.values(), previous.renders if previous else {})
    lessons: list[Lesson] = []
    for source in sources.values():
        rendered = renders[source.digest]
        if isinstance(rendered, RenderTooSlow):
            path = source.summary.path
            errors.append(ContentError(path=path, line=rendered.line, message=rendered.message))
        else:
            lessons.append(Lesson(**vars(source.summary), rendered=rendered))
    lessons.sort(key=course_order)
    errors.sort(key=lambda error: error.path.name)
    return CourseSnapshot(
        directory=directory,
        files=tuple(files),
        contents=contents,
        settled=settled,
        lessons=tuple(lessons),
        errors=tuple(errors),
        sources=sources,
        renders=renders,
        search_index=search_index_build(lessons=lessons),
        quiz_forms={
            lesson.slug: {
                slot.quiz.id: quiz_form_build(slug=lesson.slug, quiz=slot.quiz)
                for slot in lesson.quizzes
                if slot.quiz is not None
            }
            for lesson in lessons
        },
        urls={lesson.slug: reverse("course:lesson", args=[lesson.slug]) for lesson in lessons},
    )


def _unchanged(snapshot: CourseSnapshot, directory: str) -> bool:
    if snapshot.directory != directory or not snapshot.settled:
        return False
    return snapshot.files == tuple(_file_key(name, info) for name, info in _lesson_files(directory))


def _lesson_files(directory: str) -> list[tuple[str, os.stat_result]]:
    """(name, stat) of the regular *.md files, by name; no directory, no lessons."""
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".md"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        try:
            info = os.stat(os.path.join(directory, name))
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone since the directory was listed
        if stat.S_ISREG(info.st_mode):
            found.append((name, info))
    return found


def _file_key(name: str, info: os.stat_result) -> FileKey:
    # Every write, truncate, rename over the file or utime() sets ctime to the current
    # time, which no tool can set back: with the inode and size, it shows any change.
    return (name, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _renders(sources: Iterable[LessonSource], known: Mapping[str, Render]) -> dict[str, Render]:
    """Each source's render by digest: known ones reused, the missing ones rendered in one
    child. A batch stopped at the time limit is rendered again one by one, which finds
    the slow file and names its paragraph."""
    wanted = {source.digest: source for source in sources}
    renders = {digest: known[digest] for digest in wanted if digest in known}
    missing = [source for digest, source in wanted.items() if digest not in renders]
    seconds = settings.LESSON_RENDER_SECONDS
    if len(missing) > 1:
        try:
            batch = markdown_render_bounded_many(
                items=[(source.body, source.body_line) for source in missing], seconds=seconds
            )
        except RenderTooSlow:
            pass
        else:
            renders.update((s.digest, r) for s, r in zip(missing, batch, strict=True))
            return renders
    for source in missing:
        try:
            renders[source.digest] = markdown_render_bounded(
                text=source.body, first_line=source.body_line, seconds=seconds
            )
        except RenderTooSlow as exc:
            renders[source.digest] = exc
    return renders
